"""The project's layout promises: sam2_model is pure PyTorch, `pip install .` ships it,
and the colcon build installs the interfaces and both Python packages together."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROS_MODULES = {
    "rclpy",
    "rosidl_runtime_py",
    "sensor_msgs",
    "std_msgs",
    "geometry_msgs",
    "builtin_interfaces",
    "std_srvs",
    "diagnostic_msgs",
    "lifecycle_msgs",
    "sam2_ros",
    "launch",
    "launch_ros",
    "cv_bridge",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_sam2_model_imports_nothing_from_ros():
    files = sorted((ROOT / "sam2_model").rglob("*.py"))
    assert len(files) > 10
    offenders = {str(f.relative_to(ROOT)): sorted(_imports(f) & ROS_MODULES) for f in files}
    assert {f: m for f, m in offenders.items() if m} == {}


def test_sam2_model_imports_in_a_clean_interpreter_without_ros():
    code = (
        "import sys, sam2_model; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'rclpy', 'sensor_msgs', 'sam2_ros'}); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_pip_wheel_contains_sam2_model_only(tmp_path):
    # build from a copy of the sources so that setuptools' build/ and egg-info stay out of the repo
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", "build", "install", "log", ".git", "__pycache__"))
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(src)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    (wheel,) = tmp_path.glob("sam2_model-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "sam2_model/__init__.py" in names
    assert "sam2_model/modeling/hiera.py" in names
    assert not any(n.startswith(("sam2_ros/", "test/")) for n in names)


@pytest.mark.ros
def test_colcon_install_space_has_interfaces_and_python_packages():
    import sam2_model
    import sam2_ros
    from sam2_ros.msg import TrackedObject, TrackedObjectArray
    from sam2_ros.srv import AddPrompt, RemoveObject

    # both packages come from the install space (not the source tree)
    assert "install" in Path(sam2_ros.__file__).parts
    assert "install" in Path(sam2_model.__file__).parts
    obj = TrackedObject()
    assert list(obj.get_fields_and_field_types()) == [
        "id",
        "label",
        "occluded",
        "object_score",
        "iou_score",
        "bbox",
        "area",
        "mask",
        "position",
        "size",
        "has_position",
    ]
    assert obj.get_fields_and_field_types()["position"] == "geometry_msgs/Point"
    arr = TrackedObjectArray()
    assert arr.get_fields_and_field_types()["objects"] == "sequence<sam2_ros/TrackedObject>"
    req = AddPrompt.Request()
    assert req.get_fields_and_field_types()["point_labels"] == "sequence<int8>"
    assert req.get_fields_and_field_types()["camera"] == "string"
    assert set(AddPrompt.Response.get_fields_and_field_types()) == {"success", "message", "object"}
    assert RemoveObject.Request.get_fields_and_field_types() == {"object_id": "int32", "camera": "string"}


def test_every_interface_field_is_commented():
    for path in sorted((ROOT / "msg").glob("*.msg")) + sorted((ROOT / "srv").glob("*.srv")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip() and not line.startswith("#") and line.strip() != "---":
                assert lines[i - 1].startswith("#"), f"{path.name}: field {line!r} has no comment above it"


# What sam2_ros/ and launch/ import at run time that is not a ROS package, and its rosdep key
# (rosdep/python.yaml). A ROS package's key is its name (`import vision_msgs` needs
# <exec_depend>vision_msgs</exec_depend>).
PYTHON_ROSDEP_KEYS = {"numpy": "python3-numpy", "PIL": "python3-pil", "cv2": "python3-opencv", "yaml": "python3-yaml"}
# Installed with pip (see the README), not through rosdep: PyTorch's CPU/CUDA builds are not
# packaged for every platform rosdep serves, and the right wheel depends on the machine.
PIP_ONLY = {"torch"}
FIRST_PARTY = {"sam2_ros", "sam2_model"}


def _run_time_sources() -> list[Path]:
    return sorted((ROOT / "sam2_ros").glob("*.py")) + sorted((ROOT / "launch").glob("*.py"))


def _declared_run_dependencies() -> set[str]:
    import xml.etree.ElementTree as ET

    root = ET.parse(ROOT / "package.xml").getroot()
    return {e.text.strip() for tag in ("depend", "exec_depend") for e in root.iter(tag)}


def test_package_xml_declares_every_run_time_import():
    declared = _declared_run_dependencies()
    missing = {}
    for path in _run_time_sources():
        for name in sorted(_imports(path) - set(sys.stdlib_module_names) - FIRST_PARTY - PIP_ONLY):
            key = PYTHON_ROSDEP_KEYS.get(name, name)
            if key not in declared:
                missing.setdefault(key, []).append(f"{path.relative_to(ROOT)} imports {name}")
    assert missing == {}, "add these to package.xml (and to PYTHON_ROSDEP_KEYS if not a ROS package)"


def test_package_xml_python_keys_are_rosdep_keys_and_torch_is_documented():
    declared = _declared_run_dependencies()
    assert {k for k in declared if k.startswith("python3-")} <= set(PYTHON_ROSDEP_KEYS.values())
    assert "torch" not in declared and "python3-torch" not in declared
    assert "PyTorch" in (ROOT / "package.xml").read_text()  # the comment that says how to install it


def test_imports_are_found_in_every_kind_of_import_statement(tmp_path):
    # the checks above see imports inside functions and `from x.y import z` too
    source = tmp_path / "m.py"
    source.write_text("import a.b\nfrom c.d import e\nfrom . import f\n\ndef g():\n    import cv2\n")
    assert _imports(source) == {"a", "c", "cv2"}
