"""The inference thread between the ROS callbacks and the tracker (no ROS import).

Image callbacks only hand over the newest frame of their camera: a frame arriving while
another of the same camera waits replaces it (counted as dropped, never decoded), so there
is never a backlog. Each round of the inference thread takes the newest waiting frame of
every camera that has one and tracks them together, the image encoder run once over the
batch (:func:`~sam2_model.tracker.multi.track_many`); a fast camera cannot starve a slow
one. Results are published from a second thread, so the next round starts at once.
Prompts, removals, resets and detector boxes are queued and applied between rounds, each
on its camera's session (see ``camera_session``).

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
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from sam2_model import FrameResult, SAM2Tracker, track_many
from sam2_model.prompts import validate_image

from .camera_session import CameraSession
from .detector_input import DetectionBatch, DetectionReport, DetectorSettings
from .jobs import MAX_OBJECT_ID, FrameJob, OutputStats, PromptOutcome, PromptRequest, RoundStats, WorkerStats
from .topics import on_camera

__all__ = [
    "MAX_OBJECT_ID",
    "CameraSession",
    "FrameJob",
    "OutputStats",
    "PromptOutcome",
    "PromptRequest",
    "TrackerWorker",
    "WorkerStats",
]


class TrackerWorker:
    """Runs the tracker sessions of one or several cameras in its own thread, and publishes
    their results from another.

    The inference thread hands each frame's result to the publishing thread and starts the
    next round at once: building and sending messages never delays tracking. Every result
    is published, in order; when publishing falls two rounds behind, tracking waits for it.

    Args:
        tracker: the tracker (owned by the worker from now on); the first camera's session,
            the others get :meth:`SAM2Tracker.new_session` on its model.
        publish: called in the publishing thread with each frame's job and result
            (``job.camera`` says whose).
        log_error: called with a message when a frame cannot be processed.
        executor: a single-thread executor whose thread runs the worker (the one that
            built the model, see the module's note); ``None``: a thread of its own.
        report_detections: called in the inference thread with what each batch of a
            detector's boxes did (see :meth:`add_detections`).
        cameras: the cameras' names; ``("",)``: one unnamed camera.
    """

    def __init__(
        self,
        tracker: SAM2Tracker,
        publish: Callable[[FrameJob, FrameResult], None],
        log_error: Callable[[str], None],
        executor: ThreadPoolExecutor | None = None,
        report_detections: Callable[[DetectionReport], None] | None = None,
        cameras: Sequence[str] = ("",),
    ) -> None:
        self._publish = publish
        self._log_error = log_error
        report = report_detections or (lambda report: None)
        self.detector_settings = DetectorSettings()  # replaced as a whole when parameters change
        trackers = [tracker] + [tracker.new_session() for _ in cameras[1:]]
        self._sessions = {
            name: CameraSession(name, t, report, lambda: self.detector_settings)
            for name, t in zip(cameras, trackers, strict=True)
        }
        self._cond = threading.Condition()
        self._control: deque[tuple[Callable[[], PromptOutcome], Future]] = deque()
        self._executor = executor
        self._thread: threading.Thread | None = None
        self._loop_done: Future | None = None  # the loop, when it runs on the executor
        self._running = False
        self._results: queue.Queue[tuple[FrameJob, FrameResult] | None] = queue.Queue(maxsize=2 * len(cameras))
        self._publisher: threading.Thread | None = None
        self.rounds = RoundStats()

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
            for session in self._sessions.values():
                session.waiting = None
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._loop_done is not None:
            try:
                self._loop_done.result(timeout)
            except TimeoutError:  # it finishes its round and ends on its own
                pass
            except Exception as err:  # the loop died: say so, the node still shuts down
                self._log_error(f"inference loop failed: {type(err).__name__}: {err}")
            self._loop_done = None
        if self._publisher is not None:  # after the inference loop: its last results are published
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

    # ------------------------------------------------------------ cameras
    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(self._sessions)

    def camera(self, name: str = "") -> CameraSession:
        """A camera's session; ``""`` names the only camera.

        Raises:
            ValueError: naming ``camera`` when the name is unknown, or empty with several cameras.
        """
        session = self._sessions.get(name)
        if session is not None:
            return session
        if not name and len(self._sessions) == 1:
            return next(iter(self._sessions.values()))
        known = ", ".join(self._sessions)
        if not name:
            raise ValueError(f"camera: empty, but this node tracks {len(self._sessions)} cameras; name one of {known}")
        if self._sessions.keys() == {""}:
            raise ValueError(f"camera: {name!r} is unknown; this node has one unnamed camera (leave camera empty)")
        raise ValueError(f"camera: {name!r} is unknown; the cameras are {known}")

    def update_options(self, **changes: object) -> None:
        """Change the trackers' run-time options (:meth:`SAM2Tracker.update_options`) on every camera."""
        for session in self._sessions.values():
            session.tracker.update_options(**changes)

    # ------------------------------------------------------------ inputs
    def submit_frame(self, job: FrameJob) -> None:
        """Hand over the newest frame of ``job.camera`` (replacing one of it still waiting)."""
        session = self._sessions[job.camera]
        with self._cond:
            session.stats.frames_received += 1
            if session.waiting is not None:
                session.stats.frames_dropped += 1
            session.waiting = job
            self._cond.notify()

    def add_prompt(self, request: PromptRequest) -> Future:
        """Queue a prompt on ``request.camera``; the future gets a :class:`PromptOutcome`."""
        return self._queue_on(request.camera, lambda s: s.apply_prompt(request))

    def remove_object(self, obj_id: int, camera: str = "") -> Future:
        return self._queue_on(camera, lambda s: s.apply_remove(obj_id))

    def reset(self, camera: str | None = None) -> Future:
        """Reset one camera's session, or (``None``) every camera's."""
        if camera is not None:
            return self._queue_on(camera, lambda s: s.apply_reset())
        return self._queue(self._reset_all)

    def add_detections(self, batch: DetectionBatch, camera: str = "") -> None:
        """Queue a detector's boxes for the frame of ``batch.stamp_ns`` on ``camera``; what
        they did goes to ``report_detections``."""
        session = self.camera(camera)
        session.detector_stats.received += len(batch.detections)
        if batch.detections:
            self._queue(lambda: session.apply_detections(batch))

    def _queue_on(self, camera: str, fn: Callable[[CameraSession], PromptOutcome]) -> Future:
        try:
            session = self.camera(camera)
        except ValueError as err:
            fut: Future = Future()
            fut.set_result(PromptOutcome(False, str(err)))
            return fut
        return self._queue(lambda: fn(session))

    def _queue(self, fn: Callable[[], PromptOutcome]) -> Future:
        fut: Future = Future()
        with self._cond:
            if not self._running:
                fut.set_result(PromptOutcome(False, "the tracker is not running (node not active)"))
                return fut
            self._control.append((fn, fut))
            self._cond.notify()
        return fut

    def _reset_all(self) -> PromptOutcome:
        outcomes = [session.apply_reset() for session in self._sessions.values()]
        if len(outcomes) == 1:
            return outcomes[0]
        names = ", ".join(self._sessions)
        return PromptOutcome(True, f"every camera reset ({names}): no objects, frame counts restarted")

    # ------------------------------------------------------------ the thread
    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._running and not self._control and not self._any_waiting():
                    self._cond.wait()
                if not self._running:
                    return
                jobs: list[FrameJob] = []
                if self._control:  # prompts go between rounds, before the next frames
                    fn, fut = self._control.popleft()
                else:
                    for session in self._sessions.values():
                        if session.waiting is not None:
                            jobs.append(session.waiting)
                            session.waiting = None
            if not jobs:
                try:
                    fut.set_result(fn())
                except Exception as err:  # never lose the caller's answer
                    fut.set_result(PromptOutcome(False, f"internal error: {type(err).__name__}: {err}"))
            else:
                self._round(jobs)

    def _any_waiting(self) -> bool:
        return any(s.waiting is not None for s in self._sessions.values())

    def _round(self, jobs: list[FrameJob]) -> None:
        """Decode and track one frame per camera; the image encoder runs once over them."""
        start = time.monotonic()
        decoded: list[FrameJob] = []
        for job in jobs:
            try:
                job.image = validate_image(job.decode())
                self._sessions[job.camera].stats.frames_decoded += 1
                decoded.append(job)
            except Exception as err:  # a bad frame must not stop the node, nor the other cameras
                self._failed(job, err)
        sessions = [self._sessions[job.camera] for job in decoded]
        try:
            if len(decoded) == 1:  # one camera's frame: the tracker's own path (its CUDA graphs)
                results = [sessions[0].tracker.track(decoded[0].image)]
            else:
                results = track_many([s.tracker for s in sessions], [job.image for job in decoded])
        except Exception as err:
            for job in decoded:
                self._failed(job, err)
            return
        now = time.monotonic()
        if decoded:
            self.rounds.record(len(decoded), now)
        ready = []
        for session, job, result in zip(sessions, decoded, results, strict=True):
            ready += [(session, batch) for batch in session.tracked(job, result)]
            session.stats.frames_processed += 1
            session.stats.tracking_seconds.append(now - start)
        if ready:  # detector boxes held for these frames: applied before the next round
            with self._cond:
                for session, batch in reversed(ready):
                    self._control.appendleft((lambda s=session, b=batch: s.apply_detections(b), Future()))
        for job, result in zip(decoded, results, strict=True):
            self._results.put((job, result))  # waits only when publishing is two rounds behind

    def _failed(self, job: FrameJob, err: Exception) -> None:
        self._sessions[job.camera].stats.frames_failed += 1
        where = on_camera(job.camera)
        self._log_error(f"frame skipped{where}: {type(err).__name__}: {err}")

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
            stats = self._sessions[job.camera].stats
            stats.last_latency_ms = (now - job.received) * 1e3
            stats.processed_times.append(now)
            stats.publishing_seconds.append(now - start)
