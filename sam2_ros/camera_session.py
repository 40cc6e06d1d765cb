"""One camera's tracking state in the worker (no ROS import): its tracker session (its own
objects, memory banks and history on the shared model), its newest waiting frame, the
stamps of its buffered frames, its labels, and its detector's bookkeeping; and the prompts,
removals, resets and detector boxes applied to it (control jobs on the inference thread)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from sam2_model import FrameResult, SAM2Tracker

from .detector_input import (
    DetectionBatch,
    DetectionReport,
    DetectorSettings,
    DetectorStats,
    PendingBatches,
    Sightings,
    Start,
    plan_detections,
)
from .jobs import (
    MAX_OBJECT_ID,
    BufferedStamp,
    FrameJob,
    PromptOutcome,
    PromptRequest,
    WorkerStats,
    prompt_message,
    ros_field_names,
)

__all__ = ["CameraSession"]


class CameraSession:
    """A camera's tracker session and bookkeeping; its ``apply_*`` methods run on the
    inference thread only, between two rounds.

    Args:
        name: the camera's name (``""``: the node's one unnamed camera).
        tracker: its tracker session (:meth:`SAM2Tracker.new_session` for all but one).
        report_detections: called with what each batch of detector boxes did.
        settings: the detector rules now (they may change at run time).
    """

    def __init__(
        self,
        name: str,
        tracker: SAM2Tracker,
        report_detections: Callable[[DetectionReport], None],
        settings: Callable[[], DetectorSettings],
    ) -> None:
        self.name = name
        self.tracker = tracker
        self.waiting: FrameJob | None = None  # the newest frame not taken yet (guarded by the worker's lock)
        self.stats = WorkerStats()
        self.detector_stats = DetectorStats()
        self._report_detections = report_detections
        self._settings = settings
        self._stamps: OrderedDict[int, BufferedStamp] = OrderedDict()  # by stamp, oldest first
        self._labels: dict[int, str] = {}
        self._sightings = Sightings()  # how long each object has been hidden (for re-acquiring)
        self._pending = PendingBatches()  # detector boxes for frames not processed yet

    def label(self, obj_id: int) -> str:
        return self._labels.get(obj_id, "")

    def tracked(self, job: FrameJob, result: FrameResult) -> list[DetectionBatch]:
        """Book a tracked frame: its stamp (for prompts), the objects' sightings; returns the
        detector boxes held for it, to apply before the next frame."""
        self._stamps[job.stamp_ns] = BufferedStamp(result.frame_index, job.header, job.image.shape[:2])
        oldest = self.tracker.oldest_frame_index
        while self._stamps and next(iter(self._stamps.values())).frame_index < oldest:
            self._stamps.popitem(last=False)
        self._sightings.observe(result)
        ready, expired = self._pending.release(job.stamp_ns)
        self.expire(expired)
        return ready

    # ------------------------------------------------------------ prompts
    def _frame_for_stamp(self, stamp_ns: int) -> BufferedStamp:
        if not self._stamps:
            raise ValueError("stamp: no frame has been processed yet")
        if stamp_ns == 0:
            return next(reversed(self._stamps.values()))
        if stamp_ns in self._stamps:
            return self._stamps[stamp_ns]
        stamps = list(self._stamps)
        oldest, latest = stamps[0], stamps[-1]
        age = (latest - oldest) / 1e9
        raise ValueError(
            f"stamp: no buffered frame has stamp {stamp_ns / 1e9:.9f}; the buffer holds {len(stamps)} frames "
            f"from {oldest / 1e9:.9f} to {latest / 1e9:.9f} (the oldest is {age:.3f} s older than the latest)"
        )

    def _free_id(self) -> int:
        used = set(self.tracker.object_ids)
        for obj_id in range(1, MAX_OBJECT_ID + 1):
            if obj_id not in used:
                return obj_id
        raise ValueError(f"object_id: all ids 1..{MAX_OBJECT_ID} are in use")

    def apply_prompt(self, req: PromptRequest) -> PromptOutcome:
        try:
            frame = self._frame_for_stamp(req.stamp_ns)
            frame_index, header = frame.frame_index, frame.header
            obj_id = self._free_id() if req.obj_id is None else req.obj_id
            existed = obj_id in self.tracker.object_ids
            result = self.tracker.add_prompt(
                obj_id,
                points=req.points,
                labels=req.labels,
                box=req.box,
                mask=req.mask,
                frame_index=frame_index,
                clear_previous=req.clear_previous,
            )
        except ValueError as err:
            return PromptOutcome(False, ros_field_names(str(err)))
        if req.label or obj_id not in self._labels:
            self._labels[obj_id] = req.label
        self._sightings.prompted(obj_id, result)
        return PromptOutcome(
            True,
            prompt_message(obj_id, existed, frame_index, self.tracker.frame_index, result.area),
            result,
            self._labels[obj_id],
            header,
        )

    def apply_remove(self, obj_id: int) -> PromptOutcome:
        try:
            self.tracker.remove_object(obj_id)
        except ValueError as err:
            return PromptOutcome(False, ros_field_names(str(err)))
        self._labels.pop(obj_id, None)
        self._sightings.forget(obj_id)
        return PromptOutcome(True, f"object {obj_id} removed")

    def apply_reset(self) -> PromptOutcome:
        self.tracker.reset()
        self._stamps.clear()
        self._labels.clear()
        self._sightings.clear()
        self.expire(self._pending.clear())
        return PromptOutcome(True, "tracker reset: no objects, frame count restarted")

    # ------------------------------------------------------------ detector boxes
    def apply_detections(self, batch: DetectionBatch) -> PromptOutcome:
        """Plan and apply one batch on its frame; a batch for a frame not tracked yet is held."""
        frame = self._stamps.get(batch.stamp_ns)
        if frame is None:
            latest = next(reversed(self._stamps), None)
            newer = latest is None or batch.stamp_ns > latest
            self.expire(self._pending.hold(batch) if newer else [batch])  # newer: its frame may be coming
            return PromptOutcome(True, "held" if newer else "not buffered")
        stats, report = self.detector_stats, DetectionReport(batch.stamp_ns, camera=self.name)
        plan = plan_detections(
            batch.detections,
            self.tracker.frame_result(frame.frame_index),
            frame.image_hw,
            self._labels,  # read while planning, before the prompts below change it
            self._sightings,
            self._settings(),
        )
        for skipped in plan.ignored:
            setattr(stats, skipped.counter, getattr(stats, skipped.counter) + 1)
            if skipped.worth_logging:
                report.problem(skipped.reason)
        for step in [*plan.reacquires, *plan.starts]:
            new, label = isinstance(step, Start), step.detection.class_id
            request = PromptRequest(None if new else step.obj_id, batch.stamp_ns, label, box=list(step.box))
            outcome = self.apply_prompt(request)
            if not outcome.success:
                stats.refused += 1
                report.problem(f"detection of {label!r} not applied: {outcome.message}")
            elif new:
                stats.started += 1
                report.done.append(f"{label!r} detected: {outcome.message}")
            else:
                stats.reacquired += 1
                report.done.append(f"{label!r} detected again, re-acquired: {outcome.message}")
        self._report_detections(report)
        return PromptOutcome(True, f"{len(report.done)} objects started or re-acquired")

    def expire(self, batches: list[DetectionBatch]) -> None:
        """Boxes whose frame is not buffered: counted and reported."""
        for batch in batches:
            self.detector_stats.unbuffered += len(batch.detections)
            report = DetectionReport(batch.stamp_ns, camera=self.name)
            report.problem(
                f"detections stamped {batch.stamp_ns / 1e9:.9f} ignored: no buffered frame has that stamp (the "
                "frame was dropped, never received, or left the history buffer)",
                key="unbuffered",
            )
            self._report_detections(report)
