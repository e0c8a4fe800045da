"""Hypothesis strategies for journeys in the engine's own types (valid or not)."""

from __future__ import annotations

from hypothesis import strategies as st

from journeys_engine.model import (
    Branch,
    Condition,
    EntryStep,
    Journey,
    JourneySettings,
    MultiBranchSplitStep,
    SendToDestinationsStep,
    Step,
    TrueFalseSplitStep,
    WaitConditionStep,
    WaitDurationStep,
)

ids = st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True)
names = st.text(min_size=1, max_size=20).filter(lambda s: s.strip() != "")
conditions = st.builds(Condition, st.text(min_size=1, max_size=40))
refs = st.none() | ids
durations = st.integers(min_value=1, max_value=400 * 86_400_000)


def steps() -> st.SearchStrategy[Step]:
    return st.one_of(
        st.builds(EntryStep, ids, names, conditions, st.booleans(), refs),
        st.builds(WaitDurationStep, ids, names, durations, refs),
        st.builds(WaitConditionStep, ids, names, conditions, refs),
        st.builds(TrueFalseSplitStep, ids, names, conditions, refs, refs),
        st.builds(
            MultiBranchSplitStep,
            ids,
            names,
            st.lists(st.builds(Branch, names, conditions, refs), max_size=4).map(tuple),
        ),
        st.builds(
            SendToDestinationsStep,
            ids,
            names,
            st.lists(ids, max_size=3).map(tuple),
            st.just("") | st.from_regex(r"j_o_[a-z]{1,5}__[a-z]{1,5}_[a-z0-9]{6}", fullmatch=True),
            refs,
        ),
    )


settings = st.builds(
    JourneySettings,
    st.none() | durations,
    st.none() | durations,
    st.none() | conditions,
)

journeys = st.builds(
    Journey,
    id=ids,
    space_id=st.just(""),
    name=names,
    description=st.text(max_size=30),
    settings=settings,
    steps=st.lists(steps(), max_size=6).map(tuple),
)
