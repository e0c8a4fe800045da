"""The runtime: profiles moving through live journeys, driven by messages and time."""

from journeys_engine.runtime.actor import Actor, JourneyState, Run, Wait, WaitKind
from journeys_engine.runtime.outputs import Change, Output, message_id
from journeys_engine.runtime.router import Router, ShardStats
from journeys_engine.runtime.runtime import Runtime, Unit
from journeys_engine.runtime.sink import MemorySink, Sink
from journeys_engine.runtime.stats import JourneyStats, StepStats
from journeys_engine.runtime.wheel import TimerWheel

__all__ = [
    "Actor",
    "Change",
    "JourneyState",
    "JourneyStats",
    "MemorySink",
    "Output",
    "Router",
    "Run",
    "Runtime",
    "ShardStats",
    "Sink",
    "StepStats",
    "TimerWheel",
    "Unit",
    "Wait",
    "WaitKind",
    "message_id",
]
