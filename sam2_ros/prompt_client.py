"""``sam2_prompt``: prompt the tracker node from a shell, without the ``ros2`` command.

    sam2_prompt click 320 240 --id 1 --label cup       # a positive click on the latest frame
    sam2_prompt click 300 200 --id 1 --negative        # a negative click (refines object 1)
    sam2_prompt box 100 80 220 300 --id 2              # x0 y0 x1 y1 (inclusive pixels)
    sam2_prompt mask cup_mask.png --id 3               # non-zero pixels = the object
    sam2_prompt remove 2
    sam2_prompt reset

``--node`` names the tracker (default ``/sam2_tracker``); ``--camera NAME`` one of its
cameras (a node with ``cameras``; ``reset`` then resets that camera only); ``--stamp SEC.NSEC``
picks a past frame. Exit status: 0 done, 1 refused by the node (its message is printed), 2 no answer.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
from PIL import Image as PILImage
from rclpy.node import Node
from sensor_msgs.msg import RegionOfInterest
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from .conversions import array_to_image
from .srv import AddPrompt, RemoveObject

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sam2_prompt", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--node", default="/sam2_tracker", help="the tracker node's name (default /sam2_tracker)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the node")
    parser.add_argument("--camera", default="", help="the camera, on a node with several (default: its only one)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("click", "a click"), ("box", "a box"), ("mask", "a mask image file")):
        p = sub.add_parser(name, help=help_text)
        if name == "click":
            p.add_argument("x", type=float)
            p.add_argument("y", type=float)
            p.add_argument("--negative", action="store_true", help="the click is not on the object")
        elif name == "box":
            for coord in ("x0", "y0", "x1", "y1"):
                p.add_argument(coord, type=int)
        else:
            p.add_argument("file", help="image file of the frame's size; non-zero pixels are the object")
        p.add_argument("--id", type=int, default=1, dest="object_id", help="object id, 1..255 (default 1)")
        p.add_argument("--label", default="", help="a label kept with the object")
        p.add_argument("--stamp", type=float, default=0.0, help="the frame's stamp in seconds (0: latest)")
        p.add_argument("--clear", action="store_true", help="drop the object's earlier prompts on that frame")
    rm = sub.add_parser("remove", help="stop tracking an object")
    rm.add_argument("object_id", type=int)
    sub.add_parser("reset", help="forget all objects")
    return parser


def build_request(args: argparse.Namespace) -> AddPrompt.Request:
    """The AddPrompt request for a click, box or mask command."""
    req = AddPrompt.Request(object_id=args.object_id, label=args.label, clear_previous=args.clear, camera=args.camera)
    sec = int(args.stamp)
    req.stamp = Time(sec=sec, nanosec=round((args.stamp - sec) * 1e9))
    if args.command == "click":
        req.points = [Point(x=args.x, y=args.y, z=0.0)]
        req.point_labels = [0 if args.negative else 1]
    elif args.command == "box":
        req.box = RegionOfInterest(
            x_offset=args.x0, y_offset=args.y0, width=args.x1 - args.x0 + 1, height=args.y1 - args.y0 + 1
        )
    else:
        mask = np.asarray(PILImage.open(args.file).convert("L")) != 0
        req.mask = array_to_image(np.where(mask, 255, 0).astype(np.uint8), "mono8", Header())
    return req


def _call(node: Node, srv_type: type, name: str, request: object, timeout: float) -> object | None:
    client = node.create_client(srv_type, name)
    if not client.wait_for_service(timeout_sec=timeout):
        print(f"sam2_prompt: no service {name} (is the tracker node running?)", file=sys.stderr)
        return None
    future = client.call_async(request)
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    if not future.done():
        print(f"sam2_prompt: {name} did not answer within {timeout:.0f} s", file=sys.stderr)
        return None
    return future.result()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    base = args.node.rstrip("/")
    rclpy.init()
    node = rclpy.create_node("sam2_prompt")
    try:
        if args.command == "remove":
            resp = _call(
                node,
                RemoveObject,
                f"{base}/remove_object",
                RemoveObject.Request(object_id=args.object_id, camera=args.camera),
                args.timeout,
            )
        elif args.command == "reset":
            service = f"{base}/{args.camera}/reset" if args.camera else f"{base}/reset"
            resp = _call(node, Trigger, service, Trigger.Request(), args.timeout)
        else:
            try:
                request = build_request(args)
            except (OSError, ValueError) as err:
                print(f"sam2_prompt: {err}", file=sys.stderr)
                return 2
            resp = _call(node, AddPrompt, f"{base}/add_prompt", request, args.timeout)
        if resp is None:
            return 2
        print(resp.message)
        if resp.success and hasattr(resp, "object"):
            o = resp.object
            print(
                f"id {o.id} area {o.area} bbox x={o.bbox.x_offset} y={o.bbox.y_offset} "
                f"w={o.bbox.width} h={o.bbox.height} score {o.object_score:.3f} iou {o.iou_score:.3f}"
                + (" occluded" if o.occluded else "")
            )
        return 0 if resp.success else 1
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
