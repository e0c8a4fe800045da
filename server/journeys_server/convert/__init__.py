"""The one edge between protobuf messages and the engine's own types.

Decoding a request collects what only the wire form can get wrong in a
:class:`Problems`; the engine reports those together with its own validation,
after checking the space, so a request is refused as a whole.
"""

from journeys_server.convert.common import Problems
from journeys_server.convert.conditions import (
    condition_from_proto,
    condition_to_proto,
    expression_from_proto,
    expression_to_proto,
)
from journeys_server.convert.definitions import (
    audience_from_proto,
    audience_to_proto,
    computed_trait_from_proto,
    computed_trait_to_proto,
    destination_from_proto,
    destination_to_proto,
    space_to_proto,
)
from journeys_server.convert.journeys import (
    journey_from_proto,
    journey_to_proto,
    status_from_proto,
    warnings_to_proto,
)
from journeys_server.convert.messages import (
    call_to_proto,
    fill_call,
    message_to_json,
    struct_to_dict,
)

__all__ = [
    "Problems",
    "audience_from_proto",
    "audience_to_proto",
    "call_to_proto",
    "fill_call",
    "computed_trait_from_proto",
    "computed_trait_to_proto",
    "condition_from_proto",
    "condition_to_proto",
    "destination_from_proto",
    "destination_to_proto",
    "expression_from_proto",
    "expression_to_proto",
    "journey_from_proto",
    "journey_to_proto",
    "message_to_json",
    "space_to_proto",
    "status_from_proto",
    "struct_to_dict",
    "warnings_to_proto",
]
