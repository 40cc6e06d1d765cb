"""``--out-bag``: a ROS 2 bag with the input image topic and the tracker's ``/NODE/objects``
(``sam2_ros/msg/TrackedObjectArray``) and ``/NODE/mask`` (mono8 label image), as the live
node publishes them, written with ``rosbags``; the package's message definitions are read
from its ``msg/`` folder and registered with rosbags (no ROS install needed)."""

from __future__ import annotations

import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from ..geometry import ObjectGeometry
from ..tracker import ObjectResult
from .bag import BagRecord
from .config import TrackError

__all__ = ["BagOutput", "find_msg_dir", "register_package_msgs"]

_NUMERIC = {"bool": np.bool_, "byte": np.uint8, "char": np.uint8, "octet": np.uint8}


def find_msg_dir() -> Path:
    """The package's ``msg/`` folder: the ROS install's share/sam2_ros/msg, a pip install's
    <prefix>/share/sam2_ros/msg, or the source tree's msg/."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    candidates = [Path(p) / "share" / "sam2_ros" / "msg" for p in prefixes]
    candidates.append(Path(__file__).resolve().parents[2] / "msg")
    for path in candidates:
        if (path / "TrackedObjectArray.msg").is_file():
            return path
    raise TrackError(
        f"out_bag: cannot find the sam2_ros message definitions (looked in {', '.join(map(str, candidates))})"
    )


def register_package_msgs(typestore: object, msg_dir: Path) -> None:
    """Register every ``msg_dir/*.msg`` as ``sam2_ros/msg/<name>`` in a rosbags type store."""
    from rosbags.typesys import get_types_from_msg

    types = {}
    for path in sorted(msg_dir.glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(encoding="utf-8"), f"sam2_ros/msg/{path.stem}"))
    typestore.register(types)


def _default(typestore: object, spec: tuple) -> object:
    """The zero value of a field of a rosbags type (so that fields added to msg/ get one)."""
    from rosbags.interfaces import Nodetype

    kind, detail = spec
    if kind == Nodetype.NAME:
        return build_msg(typestore, detail)
    if kind == Nodetype.BASE:
        name = detail[0]
        return "" if name in ("string", "wstring") else False if name == "bool" else 0.0 if "float" in name else 0
    (sub_kind, sub), length = detail
    if sub_kind == Nodetype.BASE and sub[0] not in ("string", "wstring"):
        return np.zeros(length if kind == Nodetype.ARRAY else 0, dtype=_NUMERIC.get(sub[0], sub[0]))
    return [_default(typestore, (sub_kind, sub)) for _ in range(length if kind == Nodetype.ARRAY else 0)]


def build_msg(typestore: object, msgtype: str, **values: object) -> object:
    """A message of ``msgtype`` with ``values``; every other field gets its zero value."""
    fields = typestore.fielddefs[msgtype][1]
    unknown = set(values) - {name for name, _ in fields}
    if unknown:
        raise TrackError(f"out_bag: {msgtype} has no field {sorted(unknown)[0]!r} (msg/ changed?)")
    args = {name: values[name] if name in values else _default(typestore, spec) for name, spec in fields}
    return typestore.types[msgtype](**args)


class BagOutput:
    """Writes the output bag frame by frame (call :meth:`close` at the end)."""

    def __init__(self, path: str | Path, storage: str, node_name: str, overwrite: bool = False) -> None:
        try:
            from rosbags.rosbag2 import StoragePlugin, Writer
            from rosbags.typesys import Stores, get_typestore
        except ImportError as err:
            raise TrackError("out_bag: writing bags needs the rosbags package (pip install rosbags)") from err
        self.path = Path(path).expanduser()
        if self.path.exists():
            if not (overwrite and (self.path / "metadata.yaml").is_file()):
                raise TrackError(f"out_bag: {self.path} exists (remove it, or --overwrite an earlier output bag)")
            shutil.rmtree(self.path)
        self.typestore = get_typestore(Stores.ROS2_HUMBLE)
        register_package_msgs(self.typestore, find_msg_dir())
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self.writer = Writer(self.path, version=9, storage_plugin=plugin)  # opened by the first write
        ns = "/" + node_name.strip("/")
        self._topics = (f"{ns}/objects", f"{ns}/mask")
        self._conns: tuple | None = None

    def _connect(self, record: BagRecord) -> tuple:
        w, ts = self.writer, self.typestore
        w.open()  # here, in the thread that writes: sqlite3 connections stay on their thread
        if record.msgdef and record.digest:  # the input's own definition, so the copy is verbatim
            image = w.add_connection(record.topic, record.msgtype, msgdef=record.msgdef, rihs01=record.digest)
        else:
            image = w.add_connection(record.topic, record.msgtype, typestore=ts)
        objects = w.add_connection(self._topics[0], "sam2_ros/msg/TrackedObjectArray", typestore=ts)
        mask = w.add_connection(self._topics[1], "sensor_msgs/msg/Image", typestore=ts)
        return image, objects, mask

    def _image(self, header: object, pixels: np.ndarray) -> object:
        h, w = pixels.shape[:2]
        data = np.ascontiguousarray(pixels, dtype=np.uint8).reshape(-1)
        return build_msg(
            self.typestore,
            "sensor_msgs/msg/Image",
            header=header,
            height=h,
            width=w,
            encoding="mono8",
            step=w,
            data=data,
        )

    def _object(self, header: object, o: ObjectResult, label: str, geometry: ObjectGeometry | None) -> object:
        ts = self.typestore
        if o.bbox is None:
            roi, crop = build_msg(ts, "sensor_msgs/msg/RegionOfInterest"), np.zeros((0, 0), np.uint8)
        else:
            x0, y0, x1, y1 = o.bbox
            roi = build_msg(
                ts, "sensor_msgs/msg/RegionOfInterest", x_offset=x0, y_offset=y0, width=x1 - x0 + 1, height=y1 - y0 + 1
            )
            crop = np.where(o.mask[y0 : y1 + 1, x0 : x1 + 1], 255, 0).astype(np.uint8)
        score = 1.0 / (1.0 + math.exp(-max(min(o.object_score, 60.0), -60.0)))
        return build_msg(
            ts,
            "sam2_ros/msg/TrackedObject",
            id=o.obj_id,
            label=label,
            occluded=bool(o.occluded),
            object_score=score,
            iou_score=float(o.iou),
            bbox=roi,
            area=int(o.area),
            mask=self._image(header, crop),
            **self._position(geometry),
        )

    def _position(self, geometry: ObjectGeometry | None) -> dict[str, object]:
        """The position, size and has_position fields (absent: their zero values)."""
        if geometry is None or geometry.position is None:
            return {}
        ts = self.typestore
        (px, py, pz), (sx, sy, sz) = geometry.position, geometry.size
        return {
            "position": build_msg(ts, "geometry_msgs/msg/Point", x=px, y=py, z=pz),
            "size": build_msg(ts, "geometry_msgs/msg/Vector3", x=sx, y=sy, z=sz),
            "has_position": True,
        }

    def write(
        self,
        record: BagRecord,
        frame_index: int,
        objects: dict[int, ObjectResult],
        label_image: np.ndarray,
        labels: dict[int, str],
        latency_ms: float,
        geometry: dict[int, ObjectGeometry] | None = None,
    ) -> None:
        """The input message and the tracker's messages for it, at the input's record time
        (with ``geometry``, each object's position and size)."""
        ts = self.typestore
        if self._conns is None:
            self._conns = self._connect(record)
        image_conn, objects_conn, mask_conn = self._conns
        stamp = record.header.stamp
        time = build_msg(ts, "builtin_interfaces/msg/Time", sec=stamp.sec, nanosec=stamp.nanosec)
        header = build_msg(ts, "std_msgs/msg/Header", stamp=time, frame_id=record.header.frame_id)
        array = build_msg(
            ts,
            "sam2_ros/msg/TrackedObjectArray",
            header=header,
            frame_index=frame_index,
            latency_ms=latency_ms,
            objects=[
                self._object(header, objects[i], labels.get(i, ""), (geometry or {}).get(i)) for i in sorted(objects)
            ],
        )
        t = record.log_time_ns
        self.writer.write(image_conn, t, record.raw)
        self.writer.write(objects_conn, t, ts.serialize_cdr(array, "sam2_ros/msg/TrackedObjectArray"))
        self.writer.write(mask_conn, t, ts.serialize_cdr(self._image(header, label_image), "sensor_msgs/msg/Image"))

    def close(self) -> None:
        if self._conns is not None:
            self.writer.close()
