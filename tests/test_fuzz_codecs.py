"""scripts/fuzz_codecs.py on a short budget (the script runs 100,000+ inputs outside `make test`), the fuzzer's
own crash detection, and the codec fixes its runs and the hostile corpora led to, one case each."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2, types_pb2
from tritonclient.grpc import service_pb2

from server_process import REPO_ROOT
from service.errors import InvalidInputError
from service.adapters.kserve_api import v2_tensors as v2
from service.tensors.dtypes import BY_V2_NAME
from service.adapters.rest_api.json_body import loads
from service.adapters.rest_api.json_examples import examples_from_json
from service.adapters.rest_api.json_tensors import parse_predict_request
from service.tensors.spec import SignatureSpec, TensorSpec
from service.tensors.tensor_proto import MAX_RANK, to_array

SHORT_RUN = 5000


@pytest.fixture(scope="module")
def fuzzer():
    spec = importlib.util.spec_from_file_location("fuzz_codecs", REPO_ROOT / "scripts" / "fuzz_codecs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_codecs"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("fuzz_codecs", None)


def test_a_short_fuzz_run_finds_no_crash(fuzzer):
    out = io.StringIO()
    result = fuzzer.fuzz(SHORT_RUN, seed=2024, out=out)
    assert not result.crashes, out.getvalue()[:5000]
    assert result.inputs == SHORT_RUN
    for target in ("json", "v2", "proto"):  # each target both accepts and refuses inputs: both paths run
        assert result.outcomes[target, "accepted"] > 0 and result.outcomes[target, "refused"] > 0, result.outcomes
    assert "crashes: 0" in fuzzer.summary(result)


def test_the_fuzzer_reports_a_crash_with_its_input_and_fails(fuzzer, monkeypatch, capsys):
    real = v2.input_array

    def input_array(tensor, raw, *args, **kwargs):
        if raw is not None and tensor.datatype == "BOOL":
            raise IndexError("planted")
        return real(tensor, raw, *args, **kwargs)

    monkeypatch.setattr(v2, "input_array", input_array)
    assert fuzzer.main(["--inputs", "2000", "--seed", "3"]) == 1
    printed = capsys.readouterr().out
    assert "CRASH #1 (v2" in printed and "IndexError: planted" in printed and "raw=b'" in printed
    assert "crashes: 0" not in printed


def test_an_accepted_input_that_breaks_the_contract_is_a_crash(fuzzer, monkeypatch):
    monkeypatch.setattr(v2, "input_array", lambda tensor, raw, *a, **k: np.zeros(3, np.int8))
    result = fuzzer.fuzz(400, seed=5, out=io.StringIO())
    assert result.crashes and any("ContractError" in crash.error for crash in result.crashes)


# -- the codec fixes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [b"1e400", b"-1e400", b"1E+309", b"1" + b"0" * 400, b"1" * 250 + b"e99",
                                   b"0.1e311", b"-" + b"9" * 309 + b".5"])
def test_a_number_beyond_a_double_is_a_parse_error_not_infinity(token):
    with pytest.raises(InvalidInputError, match="JSON Parse error: Number too big to be stored in double."):
        loads(b'{"instances": [1.0, ' + token + b"]}")


@pytest.mark.parametrize("text, value", [
    (b"[1e308]", [1e308]), (b"[1e-400]", [0.0]), (b'["1e400"]', ["1e400"]),
    (b"[Infinity, -Infinity]", [math.inf, -math.inf]),
    (b"[" + b"1" * 300 + b"]", [float("1" * 300)]),  # beyond uint64: a double, as rapidjson reads it (b'[1e+100, 0.5, {"b64": "e123"}]', [1e100, 0.5, {"b64": "e123"}]),
])
def test_numbers_within_a_double_and_strings_are_unchanged(text, value):
    assert loads(text) == value
    assert loads(text.decode()) == value


@settings(max_examples=300, deadline=None)
@given(digits=st.integers(1, 400), fraction=st.booleans(), exponent=st.integers(-450, 450), sign=st.booleans())
def test_the_overflow_check_misses_no_number(digits, fraction, exponent, sign):
    """The body is only checked number by number when a cheap scan finds a hint; no overflowing token escapes it."""
    token = ("-" if sign else "") + "7" * digits + (".25" if fraction else "") + f"e{exponent:+d}"
    overflows = math.isinf(float(token))
    try:
        parsed = loads(f'{{"x": [{token}]}}'.encode())
    except InvalidInputError:
        assert overflows, token
    else:
        assert not overflows and parsed["x"][0] == float(token), token


@pytest.mark.parametrize("encoded, decoded", [
    ("aGVs\nbG8=\n", b"hello"), (" aGk= ", b"hi"), ("aG\tk", b"hi"), ("aGk", b"hi"), ("aGk=", b"hi"),
])
def test_base64_takes_what_absl_takes_whitespace_and_missing_padding(encoded, decoded):
    signature = SignatureSpec("s", "tensorflow/serving/predict", {"x": TensorSpec("x", BY_V2_NAME["BYTES"], None)}, {})
    arrays, _ = parse_predict_request({"instances": [{"b64": encoded}]}, signature)
    assert arrays["x"].tolist() == [decoded]
    assert examples_from_json({"examples": [{"f": {"b64": encoded}}]})


@pytest.mark.parametrize("encoded", ["aGk==", "aGk=aGk=", "a", "%%%", "a\u00e9", "aG\u00a0k"])
def test_base64_refuses_what_absl_refuses(encoded):
    signature = SignatureSpec("s", "tensorflow/serving/predict", {"x": TensorSpec("x", BY_V2_NAME["BYTES"], None)}, {})
    with pytest.raises(InvalidInputError, match="Unable to base64 decode"):
        parse_predict_request({"instances": [{"b64": encoded}]}, signature)


def test_a_feature_name_that_is_not_utf8_is_refused_not_a_crash():
    body = loads(b'{"examples": [{"\\ud800": 1.0}]}')
    with pytest.raises(InvalidInputError) as refused:
        examples_from_json(body)
    assert str(refused.value) == 'Feature name "\\ud800" is not valid UTF-8 (an unpaired surrogate)'
    str(refused.value).encode("utf-8")


@pytest.mark.parametrize("body", [
    b'{"instances": ["\\udfff"]}', b'{"instances": [{"\\ud800": "a"}]}', b'{"inputs": {"x": "\\ud83d"}}',
])
def test_a_refusal_that_echoes_an_unpaired_surrogate_can_be_written_as_utf8(body):
    signature = SignatureSpec("s", "tensorflow/serving/predict", {"x": TensorSpec("x", BY_V2_NAME["BYTES"], None)}, {})
    with pytest.raises(InvalidInputError) as refused:
        parse_predict_request(loads(body), signature)
    message = str(refused.value)
    message.encode("utf-8")
    assert "\\ud" in message


def test_a_giant_key_is_echoed_cut_short():
    signature = SignatureSpec("s", "tensorflow/serving/predict", {"x": TensorSpec("x", BY_V2_NAME["FP32"], None)}, {})
    with pytest.raises(InvalidInputError) as refused:
        parse_predict_request({"instances": [{"k" * 1_000_000: 1.0}]}, signature)
    assert len(str(refused.value)) < 1000 and "kkk..." in str(refused.value)
    with pytest.raises(InvalidInputError) as refused:
        examples_from_json({"examples": [{"f" * 1_000_000: None}]})
    assert len(str(refused.value)) < 1000


@pytest.mark.parametrize("rank", [MAX_RANK + 1, 70, 100_000])
def test_more_dimensions_than_numpy_has_are_refused_in_both_decoders(rank):
    tensor = service_pb2.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=[1] * rank)
    tensor.contents.fp32_contents.append(1.0)
    with pytest.raises(InvalidInputError, match=f"input 'x' has {rank} dimensions; at most {MAX_RANK} are supported"):
        v2.input_array(tensor, None)
    with pytest.raises(InvalidInputError, match=f"has {rank} dimensions"):
        v2.input_array(tensor.__class__(name="x", datatype="BYTES", shape=[1] * rank), b"\0\0\0\0")
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0])
    for _ in range(rank):
        proto.tensor_shape.dim.add(size=1)
    with pytest.raises(InvalidInputError, match=f"has {rank} dimensions"):
        to_array(proto, "x")


def test_sixty_four_dimensions_are_still_taken():
    tensor = service_pb2.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=[1] * MAX_RANK)
    tensor.contents.fp32_contents.append(2.0)
    assert v2.input_array(tensor, None).shape == (1,) * MAX_RANK


def test_overflow_refusal_keeps_tf_servings_wording_for_the_rest_api():
    """What the REST client sees, end to end through the codec (tests/test_hostile_rest.py sends it)."""
    with pytest.raises(InvalidInputError) as refused:
        loads(json.dumps({"instances": [1.0]}).replace("1.0", "1e400").encode())
    assert str(refused.value) == "JSON Parse error: Number too big to be stored in double."
