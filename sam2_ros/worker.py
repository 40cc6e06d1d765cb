"""The inference thread between the ROS callbacks and the tracker (no ROS import).

Image callbacks only hand over the newest frame: a frame arriving while another waits
replaces it (counted as dropped, never decoded), so there is never a backlog. Results are
published from a second thread, so the tracker starts on the next frame at once. Prompts,
removals and resets are queued and applied between frames, before the next waiting frame.
Prompts name frames by their header stamp; the worker maps the stamps of the buffered
frames to frame indices. A detector's boxes are applied the same way, on the frame they
were detected on (see ``detector_input``); boxes for a frame still waiting are held until
the tracker has taken it.

All of a node's PyTorch work should run on one thread (pass the same single-thread
``executor`` to build the model and to the worker): on the CPU every thread that runs
PyTorch ops gets its own OpenMP pool, and once a process has more pool threads than cores,
OpenMP stops spinning between parallel regions and wakes its threads for every op. Measured
on 2 cores: the demo model tracked 2.3x slower on a second thread (94 vs 41 ms per frame).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

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
    OutputStats,
    PromptOutcome,
    PromptRequest,
    WorkerStats,
    prompt_message,
    ros_field_names,
)

__all__ = [
    "MAX_OBJECT_ID",
    "FrameJob",
    "OutputStats",
    "PromptOutcome",
    "PromptRequest",
    "TrackerWorker",
    "WorkerStats",
]


class TrackerWorker:
    """Runs a :class:`SAM2Tracker` in its own thread, and publishes its results from another.

    The inference thread hands each frame's result to the publishing thread and takes the
    next frame at once: building and sending messages never delays tracking. Every result
    is published, in order; when publishing falls two frames behind, tracking waits for it.

    Args:
        tracker: the tracker (owned by the worker from now on).
        publish: called in the publishing thread with each frame's job and result.
        log_error: called with a message when a frame cannot be processed.
        report_detections: called in the inference thread with what each batch of a
            detector's boxes did (see :meth:`add_detections`).
        executor: a single-thread executor whose thread runs the worker (the one that
            built the model, see the module's note); ``None``: a thread of its own.
    """

    def __init__(
        self,
        tracker: SAM2Tracker,
        publish: Callable[[FrameJob, FrameResult], None],
        log_error: Callable[[str], None],
        executor: ThreadPoolExecutor | None = None,
        report_detections: Callable[[DetectionReport], None] | None = None,
    ) -> None:
        self.tracker = tracker
        self._publish = publish
        self._log_error = log_error
        self._cond = threading.Condition()
        self._waiting: FrameJob | None = None
        self._control: deque[tuple[Callable[[], PromptOutcome], Future]] = deque()
        self._stamps: OrderedDict[int, BufferedStamp] = OrderedDict()  # by stamp, oldest first
        self._labels: dict[int, str] = {}
        self._report_detections = report_detections or (lambda report: None)
        self._sightings = Sightings()  # how long each object has been hidden (for re-acquiring)
        self._pending = PendingBatches()  # detector boxes for frames not processed yet
        self.detector_settings = DetectorSettings()  # replaced as a whole when parameters change
        self.detector_stats = DetectorStats()
        self._executor = executor
        self._thread: threading.Thread | None = None
        self._loop_done: Future | None = None  # the loop, when it runs on the executor
        self._running = False
        self._results: queue.Queue[tuple[FrameJob, FrameResult] | None] = queue.Queue(maxsize=2)
        self._publisher: threading.Thread | None = None
        self.stats = WorkerStats()

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        with self._cond:
            if self._running:
                return
            self._running = True
        self._publisher = threading.Thread(target=self._publish_loop, name="sam2_tracker_publisher", daemon=True)
        self._publisher.start()
        if self._executor is not None:
            self._loop_done = self._executor.submit(self._loop)
            return
        self._thread = threading.Thread(target=self._loop, name="sam2_tracker_inference", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._running = False
            self._waiting = None
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._loop_done is not None:
            try:
                self._loop_done.result(timeout)
            except TimeoutError:  # it finishes its frame and ends on its own
                pass
            except Exception as err:  # the loop died: say so, the node still shuts down
                self._log_error(f"inference loop failed: {type(err).__name__}: {err}")
            self._loop_done = None
        if self._publisher is not None:  # after the inference loop: its last result is published
            try:
                self._results.put(None, timeout=timeout)
            except queue.Full:  # a publisher stuck in publish(): never block the shutdown on it
                self._log_error("publishing thread did not drain its results")
            self._publisher.join(timeout)
            self._publisher = None
        while self._control:  # nobody will answer these any more
            _, fut = self._control.popleft()
            fut.set_result(PromptOutcome(False, "the tracker was stopped"))

    @property
    def running(self) -> bool:
        return self._running

    # ------------------------------------------------------------ inputs
    def submit_frame(self, job: FrameJob) -> None:
        """Hand over the newest frame (replacing a waiting one)."""
        with self._cond:
            self.stats.frames_received += 1
            if self._waiting is not None:
                self.stats.frames_dropped += 1
            self._waiting = job
            self._cond.notify()

    def add_prompt(self, request: PromptRequest) -> Future:
        """Queue a prompt; the future gets a :class:`PromptOutcome`."""
        return self._queue(lambda: self._apply_prompt(request))

    def remove_object(self, obj_id: int) -> Future:
        return self._queue(lambda: self._apply_remove(obj_id))

    def reset(self) -> Future:
        return self._queue(self._apply_reset)

    def add_detections(self, batch: DetectionBatch) -> None:
        """Queue a detector's boxes for the frame of ``batch.stamp_ns``; what they did goes
        to ``report_detections``."""
        self.detector_stats.received += len(batch.detections)
        if batch.detections:
            self._queue(lambda: self._apply_detections(batch))

    def label(self, obj_id: int) -> str:
        return self._labels.get(obj_id, "")

    def _queue(self, fn: Callable[[], PromptOutcome]) -> Future:
        fut: Future = Future()
        with self._cond:
            if not self._running:
                fut.set_result(PromptOutcome(False, "the tracker is not running (node not active)"))
                return fut
            self._control.append((fn, fut))
            self._cond.notify()
        return fut

    # ------------------------------------------------------------ the thread
    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._running and not self._control and self._waiting is None:
                    self._cond.wait()
                if not self._running:
                    return
                if self._control:  # prompts go between frames, before the next frame
                    fn, fut = self._control.popleft()
                    job = None
                else:
                    job, self._waiting = self._waiting, None
            if job is None:
                try:
                    fut.set_result(fn())
                except Exception as err:  # never lose the caller's answer
                    fut.set_result(PromptOutcome(False, f"internal error: {type(err).__name__}: {err}"))
            else:
                self._process(job)

    def _process(self, job: FrameJob) -> None:
        start = time.monotonic()
        try:
            job.image = job.decode()
            self.stats.frames_decoded += 1
            result = self.tracker.track(job.image)
        except Exception as err:  # a bad frame must not stop the node
            self.stats.frames_failed += 1
            self._log_error(f"frame skipped: {type(err).__name__}: {err}")
            return
        self._stamps[job.stamp_ns] = BufferedStamp(result.frame_index, job.header, job.image.shape[:2])
        oldest = self.tracker.oldest_frame_index
        while self._stamps and next(iter(self._stamps.values())).frame_index < oldest:
            self._stamps.popitem(last=False)
        self._sightings.observe(result)
        self._release_detections(job.stamp_ns)
        self.stats.frames_processed += 1
        self.stats.tracking_seconds.append(time.monotonic() - start)
        self._results.put((job, result))  # waits only when publishing is two frames behind

    def _publish_loop(self) -> None:
        """The publishing thread: every result, in order, until ``None``."""
        while (item := self._results.get()) is not None:
            job, result = item
            start = time.monotonic()
            try:
                self._publish(job, result)
            except Exception as err:
                self._log_error(f"publishing failed: {type(err).__name__}: {err}")
            now = time.monotonic()
            self.stats.last_latency_ms = (now - job.received) * 1e3
            self.stats.processed_times.append(now)
            self.stats.publishing_seconds.append(now - start)

    # ------------------------------------------------------------ control jobs
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

    def _apply_prompt(self, req: PromptRequest) -> PromptOutcome:
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

    def _apply_remove(self, obj_id: int) -> PromptOutcome:
        try:
            self.tracker.remove_object(obj_id)
        except ValueError as err:
            return PromptOutcome(False, ros_field_names(str(err)))
        self._labels.pop(obj_id, None)
        self._sightings.forget(obj_id)
        return PromptOutcome(True, f"object {obj_id} removed")

    def _apply_reset(self) -> PromptOutcome:
        self.tracker.reset()
        self._stamps.clear()
        self._labels.clear()
        self._sightings.clear()
        self._expire(self._pending.clear())
        return PromptOutcome(True, "tracker reset: no objects, frame count restarted")

    # ------------------------------------------------------------ detector boxes
    def _apply_detections(self, batch: DetectionBatch) -> PromptOutcome:
        """Plan and apply one batch on its frame (a control job on the inference thread)."""
        frame = self._stamps.get(batch.stamp_ns)
        if frame is None:
            latest = next(reversed(self._stamps), None)
            newer = latest is None or batch.stamp_ns > latest
            self._expire(self._pending.hold(batch) if newer else [batch])  # newer: its frame may be coming
            return PromptOutcome(True, "held" if newer else "not buffered")
        stats, report = self.detector_stats, DetectionReport(batch.stamp_ns)
        plan = plan_detections(
            batch.detections,
            self.tracker.frame_result(frame.frame_index),
            frame.image_hw,
            self._labels,  # read while planning, before the prompts below change it
            self._sightings,
            self.detector_settings,
        )
        for skipped in plan.ignored:
            setattr(stats, skipped.counter, getattr(stats, skipped.counter) + 1)
            if skipped.worth_logging:
                report.problem(skipped.reason)
        for step in [*plan.reacquires, *plan.starts]:
            new, label = isinstance(step, Start), step.detection.class_id
            request = PromptRequest(None if new else step.obj_id, batch.stamp_ns, label, box=list(step.box))
            outcome = self._apply_prompt(request)
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

    def _release_detections(self, stamp_ns: int) -> None:
        """The frame ``stamp_ns`` was processed: apply the boxes held for it (before the next
        frame), expire those held for frames older than it."""
        ready, expired = self._pending.release(stamp_ns)
        self._expire(expired)
        if ready:
            with self._cond:
                for batch in reversed(ready):
                    fut: Future = Future()
                    self._control.appendleft((lambda b=batch: self._apply_detections(b), fut))

    def _expire(self, batches: list[DetectionBatch]) -> None:
        """Boxes whose frame is not buffered: counted and reported."""
        for batch in batches:
            self.detector_stats.unbuffered += len(batch.detections)
            report = DetectionReport(batch.stamp_ns)
            report.problem(
                f"detections stamped {batch.stamp_ns / 1e9:.9f} ignored: no buffered frame has that stamp (the "
                "frame was dropped, never received, or left the history buffer)",
                key="unbuffered",
            )
            self._report_detections(report)
