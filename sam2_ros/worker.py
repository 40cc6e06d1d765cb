"""The inference thread between the ROS callbacks and the tracker (no ROS import).

Image callbacks only hand over the newest frame: a frame arriving while another waits
replaces it (counted as dropped, never decoded), so there is never a backlog. Results are
published from a second thread, so the tracker starts on the next frame at once. Prompts,
removals and resets are queued and applied between frames, before the next waiting frame.
Prompts name frames by their header stamp; the worker maps the stamps of the buffered
frames to frame indices.

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
from dataclasses import dataclass, field

import numpy as np

from sam2_model import FrameResult, ObjectResult, SAM2Tracker

__all__ = ["FrameJob", "OutputStats", "PromptOutcome", "PromptRequest", "TrackerWorker", "WorkerStats"]

MAX_OBJECT_ID = 255


@dataclass
class FrameJob:
    """A received frame waiting for the tracker; its pixels are decoded only if the tracker
    takes it (a frame replaced while it waits costs nothing)."""

    decode: Callable[[], np.ndarray]  # -> [H, W, 3] RGB uint8; called once, on the inference thread
    stamp_ns: int  # header stamp in nanoseconds
    header: object  # the message header, handed back with the result
    received: float  # time.monotonic() when the callback got it
    image: np.ndarray | None = None  # [H, W, 3] RGB uint8, set when the worker decoded it

    @classmethod
    def of_array(cls, image: np.ndarray, stamp_ns: int, header: object, received: float) -> FrameJob:
        """A job for a frame that is already an RGB array."""
        return cls(lambda: image, stamp_ns, header, received)


@dataclass
class PromptRequest:
    """A prompt for the tracker (already decoded from the service request)."""

    obj_id: int | None  # None: the smallest free id (clicks on ~/click)
    stamp_ns: int  # 0: the latest processed frame
    label: str = ""
    points: np.ndarray | None = None  # [N, 2] pixels
    labels: np.ndarray | None = None  # [N]
    box: list[float] | None = None  # inclusive pixel box
    mask: np.ndarray | None = None  # [H, W] bool
    clear_previous: bool = False


@dataclass
class PromptOutcome:
    """The answer to a prompt, removal or reset."""

    success: bool
    message: str
    result: ObjectResult | None = None  # the object on the prompted frame
    label: str = ""
    header: object = None  # the prompted frame's header


@dataclass
class WorkerStats:
    """Counters for diagnostics."""

    frames_received: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0  # replaced while waiting, never tracked
    frames_decoded: int = 0  # pixels decoded: only frames taken by the tracker
    frames_failed: int = 0
    last_latency_ms: float = 0.0  # received -> results published
    processed_times: deque = field(default_factory=lambda: deque(maxlen=60))  # monotonic, when published
    tracking_seconds: deque = field(default_factory=lambda: deque(maxlen=60))  # decoding + tracking, per frame
    publishing_seconds: deque = field(default_factory=lambda: deque(maxlen=60))  # building + publishing, per frame

    @property
    def rate_hz(self) -> float:
        """Frames published per second over the last 60: the output rate (at most the input's;
        pauses in the input count)."""
        t = self.processed_times
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) >= 2 and t[-1] > t[0] else 0.0

    @property
    def tracking_ms(self) -> float:
        """Mean time the inference thread spends on one frame (decoding and tracking), last 60."""
        return _mean_ms(self.tracking_seconds)

    @property
    def publishing_ms(self) -> float:
        """Mean time the publishing thread spends on one frame's messages, last 60."""
        return _mean_ms(self.publishing_seconds)

    @property
    def processing_ms(self) -> float:
        """The slower of the two stages, which run side by side: ``1000 / processing_ms`` is
        the rate the node could sustain."""
        return max(self.tracking_ms, self.publishing_ms)


def _mean_ms(seconds: deque) -> float:
    return 1e3 * sum(seconds) / len(seconds) if seconds else 0.0


@dataclass
class OutputStats:
    """Images built for the optional outputs: only for frames published while someone
    subscribes to them."""

    label_images: int = 0  # ~/mask
    overlays: int = 0  # ~/overlay


class TrackerWorker:
    """Runs a :class:`SAM2Tracker` in its own thread, and publishes its results from another.

    The inference thread hands each frame's result to the publishing thread and takes the
    next frame at once: building and sending messages never delays tracking. Every result
    is published, in order; when publishing falls two frames behind, tracking waits for it.

    Args:
        tracker: the tracker (owned by the worker from now on).
        publish: called in the publishing thread with each frame's job and result.
        log_error: called with a message when a frame cannot be processed.
        executor: a single-thread executor whose thread runs the worker (the one that
            built the model, see the module's note); ``None``: a thread of its own.
    """

    def __init__(
        self,
        tracker: SAM2Tracker,
        publish: Callable[[FrameJob, FrameResult], None],
        log_error: Callable[[str], None],
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self.tracker = tracker
        self._publish = publish
        self._log_error = log_error
        self._cond = threading.Condition()
        self._waiting: FrameJob | None = None
        self._control: deque[tuple[Callable[[], PromptOutcome], Future]] = deque()
        self._stamps: OrderedDict[int, tuple[int, object]] = OrderedDict()  # stamp -> (frame, header)
        self._labels: dict[int, str] = {}
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
        self._stamps[job.stamp_ns] = (result.frame_index, job.header)
        oldest = self.tracker.oldest_frame_index
        while self._stamps and next(iter(self._stamps.values()))[0] < oldest:
            self._stamps.popitem(last=False)
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
    def _frame_for_stamp(self, stamp_ns: int) -> tuple[int, object]:
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
            frame_index, header = self._frame_for_stamp(req.stamp_ns)
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
            return PromptOutcome(False, _ros_field_names(str(err)))
        if req.label or obj_id not in self._labels:
            self._labels[obj_id] = req.label
        return PromptOutcome(
            True,
            _prompt_message(obj_id, existed, frame_index, self.tracker.frame_index, result.area),
            result,
            self._labels[obj_id],
            header,
        )

    def _apply_remove(self, obj_id: int) -> PromptOutcome:
        try:
            self.tracker.remove_object(obj_id)
        except ValueError as err:
            return PromptOutcome(False, _ros_field_names(str(err)))
        self._labels.pop(obj_id, None)
        return PromptOutcome(True, f"object {obj_id} removed")

    def _apply_reset(self) -> PromptOutcome:
        self.tracker.reset()
        self._stamps.clear()
        self._labels.clear()
        return PromptOutcome(True, "tracker reset: no objects, frame count restarted")


def _prompt_message(obj_id: int, existed: bool, frame: int, latest: int, area: int) -> str:
    """What a prompt did, e.g. ``object 3 started on frame 4, tracked forward to frame 9 (area
    120 px on frame 4)``."""
    verb = "refined" if existed else "started"
    forward = "" if frame == latest else f", {'re-' if existed else ''}tracked forward to frame {latest}"
    return f"object {obj_id} {verb} on frame {frame}{forward} (area {area} px on frame {frame})"


def _ros_field_names(message: str) -> str:
    """The tracker's field names -> the service request's."""
    for ours, theirs in (("labels:", "point_labels:"), ("obj_id:", "object_id:"), ("frame_index:", "stamp:")):
        if message.startswith(ours):
            return theirs + message[len(ours) :]
    return message
