"""The node's 3D outputs, with ``depth`` on: ``~/markers`` (a box and a label per object, for
RViz), ``~/points`` (the objects' back-projected mask points) and ``~/detections_3d``
(vision_msgs). The message builders are pure functions."""

from __future__ import annotations

from types import ModuleType

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from sam2_model.colours import object_colour
from sam2_model.geometry import ObjectGeometry

from .msg import TrackedObject
from .topics import private_topic

__all__ = ["Outputs3D", "marker_array", "point_cloud"]

BOX_NS, LABEL_NS = "sam2_boxes", "sam2_labels"  # marker namespaces; the marker id is the object id
MIN_BOX = 0.01  # metres: the smallest side a box marker is drawn with (a flat object has size 0)
TEXT_HEIGHT = 0.05  # metres


def marker_array(header: Header, objects: list[TrackedObject], shown: set[int]) -> tuple[MarkerArray, set[int]]:
    """A box and a label per object with a position, in the overlay's colour; a DELETE for
    each of ``shown`` (the ids drawn last time) that has none now. Returns the array and the
    ids it draws."""
    out, drawn = MarkerArray(), set()
    for obj in objects:
        if not obj.has_position:
            continue
        drawn.add(obj.id)
        r, g, b = (float(c) / 255.0 for c in object_colour(obj.id))
        box = Marker(header=header, ns=BOX_NS, id=obj.id, type=Marker.CUBE, action=Marker.ADD)
        box.pose.position = obj.position
        box.pose.orientation.w = 1.0
        box.scale.x, box.scale.y, box.scale.z = (max(v, MIN_BOX) for v in (obj.size.x, obj.size.y, obj.size.z))
        box.color.r, box.color.g, box.color.b, box.color.a = r, g, b, 0.5
        text = Marker(header=header, ns=LABEL_NS, id=obj.id, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
        text.pose.position.x, text.pose.position.z = obj.position.x, obj.position.z
        text.pose.position.y = obj.position.y - box.scale.y / 2.0 - TEXT_HEIGHT  # above it (y points down)
        text.pose.orientation.w = 1.0
        text.scale.z = TEXT_HEIGHT
        text.color.r, text.color.g, text.color.b, text.color.a = r, g, b, 1.0
        text.text = f"{obj.id} {obj.label}".strip()
        out.markers += [box, text]
    for obj_id in sorted(shown - drawn):
        for ns in (BOX_NS, LABEL_NS):
            out.markers.append(Marker(header=header, ns=ns, id=obj_id, action=Marker.DELETE))
    return out, drawn


_POINT = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("id", "<u4")])  # 16 bytes a point


def point_cloud(header: Header, geometry: dict[int, ObjectGeometry]) -> PointCloud2:
    """Every object's back-projected interior points as one unordered cloud with fields x, y,
    z (metres, float32) and id (uint32)."""
    total = sum(len(g.points) for g in geometry.values())
    cloud = np.empty(total, _POINT)
    start = 0
    for obj_id, g in sorted(geometry.items()):
        end = start + len(g.points)
        cloud["x"][start:end], cloud["y"][start:end], cloud["z"][start:end] = g.points.T
        cloud["id"][start:end] = obj_id
        start = end
    fields = [
        PointField(name=name, offset=offset, datatype=kind, count=1)
        for name, offset, kind in (
            ("x", 0, PointField.FLOAT32),
            ("y", 4, PointField.FLOAT32),
            ("z", 8, PointField.FLOAT32),
            ("id", 12, PointField.UINT32),
        )
    ]
    return PointCloud2(
        header=header,
        height=1,
        width=total,
        fields=fields,
        is_bigendian=False,
        point_step=_POINT.itemsize,
        row_step=_POINT.itemsize * total,
        data=cloud.tobytes(),
        is_dense=True,
    )


class Outputs3D:
    """``~/markers``, ``~/points`` and, where vision_msgs is installed, ``~/detections_3d``
    (``~/<camera>/markers``... for a named camera)."""

    def __init__(self, node: Node, vision: ModuleType | None, camera: str = "") -> None:
        self._node, self._vision = node, vision
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._markers = node.create_publisher(MarkerArray, private_topic(camera, "markers"), reliable)
        self._points = node.create_publisher(PointCloud2, private_topic(camera, "points"), reliable)
        self._detections = None
        if vision is not None:
            topic = private_topic(camera, "detections_3d")
            self._detections = node.create_publisher(vision.Detection3DArray, topic, reliable)
        self._shown: set[int] = set()  # the ids whose markers are drawn
        self.clouds_built = 0  # ~/points messages built: only while someone subscribes

    def wants_points(self) -> bool:
        return self._points.get_subscription_count() > 0

    def publish(self, header: Header, objects: list[TrackedObject], geometry: dict[int, ObjectGeometry]) -> None:
        if self._markers.get_subscription_count() > 0:
            markers, self._shown = marker_array(header, objects, self._shown)
            self._markers.publish(markers)
        else:  # a new subscriber starts from a clean slate
            self._shown = set()
        if self._detections is not None and self._detections.get_subscription_count() > 0:
            self._detections.publish(self._vision.detections_3d(header, objects))
        if self.wants_points():
            self._points.publish(point_cloud(header, geometry))
            self.clouds_built += 1

    def destroy(self) -> None:
        for pub in (self._markers, self._points, self._detections):
            if pub is not None:
                self._node.destroy_publisher(pub)
