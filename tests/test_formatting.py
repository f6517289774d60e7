"""Chat formatting round-trips with the real Mistral v3 tokenizer and the embedded model's ChatML."""

import json

import pytest

from pipeline.formatting import SYSTEM_PROMPT, USER_PREFIX, ChatFormatter, answer_json
from pipeline.schema import VERDICT_FIELDS

SCENARIO = "Client: Is it safe?\nAdvisor: I guarantee you will not lose a cent on this fund."
VERDICT = {
    "final_verdict": "NON_COMPLIANT", "executive_summary": "Guarantee against loss.",
    "rule_violated": "FINRA Rule 2150(b)", "compliance_topic": "Guarantees Against Loss", "severity": "HIGH",
    "evidence_list": ["I guarantee you will not lose a cent on this fund."], "reasoning_trace": "A guarantee.",
}


@pytest.fixture(scope="module")
def mistral():
    from pipeline.testing import mistral_v3_tokenizer

    return mistral_v3_tokenizer()


@pytest.fixture(scope="module")
def smollm():
    from pipeline.models import load_tokenizer

    return load_tokenizer("embedded")


def test_answer_is_compact_json_with_verdict_first():
    shuffled = dict(reversed(list(VERDICT.items())))
    answer = answer_json(shuffled)
    assert list(json.loads(answer)) == list(VERDICT_FIELDS)
    assert answer.startswith('{"final_verdict": "NON_COMPLIANT"')


def test_mistral_matches_mistral_common_token_for_token(mistral):
    """The reference encoding is mistral-common's own, not the HF template we ship."""
    from mistral_common.protocol.instruct.messages import AssistantMessage, UserMessage
    from mistral_common.protocol.instruct.request import InstructRequest
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
    import mistral_common, pathlib

    model_file = pathlib.Path(mistral_common.__file__).parent / "data" / "mistral_instruct_tokenizer_240323.model.v3"
    reference = MistralTokenizer.from_file(str(model_file)).instruct_tokenizer
    answer = answer_json(VERDICT)
    enc = ChatFormatter(mistral).encode(SCENARIO, answer)
    expected = reference.encode_instruct(InstructRequest(messages=[
        UserMessage(content=f"{SYSTEM_PROMPT}\n\n{USER_PREFIX}{SCENARIO}"), AssistantMessage(content=answer)]))
    assert enc.input_ids == expected.tokens
    prompt_only = reference.encode_instruct(InstructRequest(messages=[
        UserMessage(content=f"{SYSTEM_PROMPT}\n\n{USER_PREFIX}{SCENARIO}")]))
    assert enc.input_ids[:enc.prompt_tokens] == prompt_only.tokens


def test_mistral_one_bos_eos_last_boundary_at_inst_close(mistral):
    f = ChatFormatter(mistral)
    assert f.system_role == "user"  # v0.3's template drops a system message from full conversations
    enc = f.encode(SCENARIO, answer_json(VERDICT))
    assert enc.input_ids.count(mistral.bos_token_id) == 1 and enc.input_ids[0] == mistral.bos_token_id
    assert enc.input_ids[-1] == mistral.eos_token_id and enc.input_ids.count(mistral.eos_token_id) == 1
    assert mistral.convert_ids_to_tokens(enc.input_ids[enc.prompt_tokens - 1]) == "[/INST]"
    assert SYSTEM_PROMPT.splitlines()[0] in enc.prompt
    assert mistral.decode(enc.input_ids[enc.prompt_tokens:], skip_special_tokens=True).strip() == answer_json(VERDICT)
    assert mistral.pad_token_id != mistral.eos_token_id


def test_chatml_system_kept_one_bos_eos_is_im_end(smollm):
    f = ChatFormatter(smollm)
    assert f.system_role == "system"
    enc = f.encode(SCENARIO, answer_json(VERDICT))
    assert smollm.eos_token == "<|im_end|>" and smollm.pad_token_id != smollm.eos_token_id
    assert enc.input_ids[0] == smollm.bos_token_id and enc.input_ids[1] != smollm.bos_token_id
    assert enc.prompt.startswith(f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>")
    assert enc.prompt.endswith("<|im_start|>assistant\n")
    assert enc.input_ids[-1] == smollm.eos_token_id
    assert enc.completion == answer_json(VERDICT) + "<|im_end|>"
    assert smollm(enc.prompt, add_special_tokens=False)["input_ids"] == enc.input_ids[:enc.prompt_tokens]


@pytest.mark.parametrize("which", ["mistral", "smollm"])
def test_batch_encoding_equals_single(which, request):
    f = ChatFormatter(request.getfixturevalue(which))
    scenarios = [SCENARIO, "Email from advisor:\n\nPlease see attached.", "x" * 50]
    answers = [answer_json(VERDICT)] * 3
    assert f.encode_batch(scenarios, answers) == [f.encode(s, a) for s, a in zip(scenarios, answers)]


def test_forced_system_role_on_mistral_is_refused(mistral):
    with pytest.raises(ValueError, match="system_role"):
        ChatFormatter(mistral, system_role="system")
