"""`pip install .` installs the pure-PyTorch `sam2_model` package (no ROS needed).

The ROS 2 package (`sam2_ros`, its messages and launch files) is built with colcon from
package.xml / CMakeLists.txt instead.
"""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="sam2_model",
    version="0.1.0",
    description="SAM 2 / 2.1 in plain PyTorch, loading Meta's official checkpoints, with a streaming tracker",
    long_description=(Path(__file__).parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["sam2_model", "sam2_model.*"]),
    python_requires=">=3.10",
    install_requires=["torch>=2.1", "numpy>=1.24", "pillow>=9.1", "tqdm>=4.60"],
    # sam2-track: video files and the overlay (OpenCV), prompts files (YAML), ROS 2 bags (rosbags)
    extras_require={"track": ["opencv-python-headless>=4.8", "pyyaml>=5.4", "rosbags>=0.11,<1"]},
    # sam2-track's defaults: the demo model, and the message definitions of its output bags
    data_files=[
        ("share/sam2_ros/models", ["models/sam2_ros_demo.pt"]),
        ("share/sam2_ros/msg", [f"msg/{p.name}" for p in sorted((Path(__file__).parent / "msg").glob("*.msg"))]),
    ],
    entry_points={
        "console_scripts": [
            "sam2-train = sam2_model.training.cli:main",
            "sam2-track = sam2_model.track.cli:main",
        ]
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
