"""The service under hostile input: every body gets a 4xx or a 200, never a 500, and ids match exactly."""

import json
import string

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_genrec import ItemIdMap
from hf_genrec.serving import ServingConfig, create_app

from .conftest import tiny_recommender


@pytest.fixture(scope="module")
def client():
    model = tiny_recommender().eval()
    model.set_item_map(ItemIdMap(range(100, 130)))  # integer ids 100..129
    with TestClient(create_app(model, ServingConfig(max_wait_ms=0.5))) as c:
        yield c


def post(client, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = client.post("/v1/recommend", content=data)
    return r.status_code, r.json()


def test_integer_ids_match_only_their_canonical_ascii_form(client):
    assert post(client, {"history": [105, "106", "+107", "-0", "0"], "unknown_items": "drop"})[0] == 200
    for lookalike in ["１０５", "0105", "--105", "²", "105 ", "1_05", "٥", "1" * 4400]:
        status, body = post(client, {"history": [lookalike]})
        assert status == 422 and "unknown item ids" in body["error"], (lookalike, body)
    status, body = post(client, b'{"history": [101], "k": ' + b"9" * 5000 + b"}")
    assert status == 400 and "more than 30 digits" in body["error"]


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b'{"history": [101], "k": NaN}', 400, "NaN is not a JSON number"),
        (b'{"history": [101], "timestamps": [Infinity]}', 400, "Infinity is not a JSON number"),
        (b'{"history": [101], "timestamps": [1e999]}', 400, "out of range"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested deeper than 32 levels"),
        (b'{"history": ' + b"[" * 40 + b"101" + b"]" * 40 + b"}", 400, "nested deeper than 32 levels"),
        (b'{"history": [101], "timestamps": [1.0]}', 422, "no time features"),
        (b'{"histories": [[101]], "histories_timestamps": [[1.0]]}', 422, "no time features"),
        (b'{"history": ["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]}', 422, "unknown item ids"),
    ],
)
def test_limits_and_undefined_inputs_are_refused_by_name(client, body, status, message):
    got, answer = post(client, body)
    assert got == status and message in answer["error"], answer


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
# Ids near the integer ones: signs, Unicode digits and lookalikes, leading zeros, very long digit strings.
digit_like = st.from_regex(r"[+-]{0,2}[0-9²٥１ ]{1,5}", fullmatch=True) | st.sampled_from(["--105", "²", "0105", "1" * 4400])
ids = st.integers(min_value=-5, max_value=200) | digit_like | st.text(string.digits + "+-１٥² ", max_size=6) | json_values
request_fields = {
    "history": st.lists(ids, max_size=8) | json_values,
    "histories": st.lists(st.lists(ids, max_size=4), max_size=4) | json_values,
    "k": st.integers(min_value=-3, max_value=10**40) | json_values,
    "unknown_items": st.sampled_from(["error", "drop", "other"]) | json_values,
    "exclude_history": st.booleans() | json_values,
    "timestamps": st.lists(st.floats(allow_nan=True), max_size=4) | json_values,
    "histories_timestamps": json_values,
    "extra": json_values,
}
requests = st.fixed_dictionaries({}, optional=request_fields)
# Requests valid in shape, so the ids themselves reach the item map (a random dict rarely gets that far).
valid_options = {"k": st.integers(min_value=1, max_value=100), "unknown_items": st.sampled_from(["error", "drop"]),
                 "exclude_history": st.booleans()}
well_formed = st.fixed_dictionaries({"history": st.lists(ids, min_size=1, max_size=8)}, optional=valid_options) | (
    st.fixed_dictionaries({"histories": st.lists(st.lists(ids, min_size=1, max_size=4), min_size=1, max_size=4)},
                          optional=valid_options))
bodies = (
    (well_formed | requests).map(lambda r: json.dumps(r).encode())  # json.dumps writes NaN / Infinity literals as given
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=64)
)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_no_body_gets_a_server_error(client, body):
    response = client.post("/v1/recommend", content=body)
    assert response.status_code == 200 or 400 <= response.status_code < 500, (body, response.text)
