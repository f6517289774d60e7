"""Chat formatting shared by training and inference, so the two can never drift.

Every example is rendered with the model's own chat template (no hand-written ``<s>``/``</s>``):
the prompt is the template applied to [instruction, communication] with the generation prompt,
the answer is the rest of the template applied to the full conversation, cut right after the
end-of-turn token. Tokenising the full text once with offsets gives the exact prompt/answer boundary
that training uses to mask the prompt.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from pipeline.schema import VERDICT_FIELDS

log = logging.getLogger(__name__)

SYSTEM_PROMPT = """You are an expert AI Forensic Compliance Auditor analyzing financial advisor-client communications for regulatory violations (SEC and FINRA rules).

Analyze the following communication and provide a comprehensive compliance assessment.

Your response must be a valid JSON object with these fields, in this order:
- final_verdict: "COMPLIANT" or "NON_COMPLIANT"
- executive_summary: One sentence summary (max 50 words)
- rule_violated: Specific rule name/number or "None"
- compliance_topic: Primary violation category or "None"
- severity: "HIGH", "MEDIUM", "LOW", or "NONE"
- evidence_list: Array of direct quotes from the communication
- reasoning_trace: Detailed analysis following the forensic protocol"""

USER_PREFIX = "COMMUNICATION:\n"


def answer_json(verdict: dict) -> str:
    """The assistant answer: the verdict as compact JSON in the fixed field order (final_verdict first)."""
    return json.dumps({k: verdict[k] for k in VERDICT_FIELDS}, ensure_ascii=False)


def build_messages(scenario: str, system_prompt: str, system_role: str, answer: str | None = None) -> list[dict]:
    """Chat messages for one communication; with `answer`, the assistant turn too.

    `system_role` is 'system' (its own message) or 'user' (instruction prepended to the user turn).
    """
    user = USER_PREFIX + scenario
    if system_role == "system":
        messages = [{"role": "system", "content": system_prompt}, {"role": "user", "content": user}]
    else:
        messages = [{"role": "user", "content": f"{system_prompt}\n\n{user}"}]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return messages


def resolve_system_role(tokenizer, system_prompt: str, requested: str = "auto") -> str:
    """Decide where the instruction goes for this tokenizer's template.

    'auto' keeps a system message only when the template renders it both in the prompt and in the
    full conversation with the prompt as an exact prefix. Mistral v0.3's template attaches the system
    text to the *last* user turn only, so in a training conversation it would silently vanish: there
    the instruction is merged into the user turn. Raises ValueError if 'system' is forced but lost.
    """
    if requested == "user":
        return "user"
    probe = "PROBE-COMMUNICATION"
    try:
        prompt = render_prompt(tokenizer, probe, system_prompt, "system")
        full = tokenizer.apply_chat_template(
            build_messages(probe, system_prompt, "system", '{"x": 1}'), tokenize=False
        )
        keeps = system_prompt in prompt and full.startswith(prompt) and system_prompt in full
    except Exception as e:  # templates that refuse a system role raise from Jinja
        log.info("chat template rejects a system message (%s); merging the instruction into the user turn", e)
        keeps = False
    if requested == "system" and not keeps:
        raise ValueError("format.system_role=system: this chat template drops or moves the system message in a "
                         "full conversation; use format.system_role=user or auto")
    return "system" if keeps else "user"


def render_prompt(tokenizer, scenario: str, system_prompt: str, system_role: str) -> str:
    """The inference prompt text, ending where the model's answer starts."""
    return tokenizer.apply_chat_template(
        build_messages(scenario, system_prompt, system_role), tokenize=False, add_generation_prompt=True
    )


@dataclass(frozen=True)
class Formatted:
    """One training example: texts, token ids and the prompt/answer boundary."""

    prompt: str
    completion: str
    input_ids: list[int]
    prompt_tokens: int


class ChatFormatter:
    """Renders and tokenises examples for one tokenizer (hold one per worker: building it probes the template)."""

    def __init__(self, tokenizer, system_prompt: str | None = None, system_role: str = "auto"):
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt or SYSTEM_PROMPT
        self.system_role = resolve_system_role(tokenizer, self.system_prompt, system_role)
        self.eos = tokenizer.eos_token
        if not self.eos:
            raise ValueError("the tokenizer has no EOS token; the model could not learn to stop")

    def verdict_tokens(self) -> tuple[list[int], tuple[int, int]]:
        """The answer's fixed prefix up to the verdict value, and the first token that differs between
        COMPLIANT and NON_COMPLIANT (ids of the COMPLIANT / NON_COMPLIANT answers), tokenised exactly as
        in training. The engine's verdict probability and the trainer's verdict weight both use it."""
        probe = {"executive_summary": "x", "rule_violated": "None", "compliance_topic": "None", "severity": "NONE",
                 "evidence_list": [], "reasoning_trace": "x"}
        seqs = {}
        for label in ("COMPLIANT", "NON_COMPLIANT"):
            enc = self.encode("probe", answer_json({**probe, "final_verdict": label}))
            seqs[label] = enc.input_ids[enc.prompt_tokens:]
        c, nc = seqs["COMPLIANT"], seqs["NON_COMPLIANT"]
        k = next(i for i in range(min(len(c), len(nc))) if c[i] != nc[i])
        return c[:k], (c[k], nc[k])

    def prompt(self, scenario: str) -> str:
        """The generation prompt for a communication (what inference feeds the model)."""
        return render_prompt(self.tokenizer, scenario, self.system_prompt, self.system_role)

    def texts(self, scenario: str, answer: str) -> tuple[str, str]:
        """(prompt, completion) texts; completion ends with the EOS/end-of-turn token.

        Raises ValueError if the template does not render the prompt as a prefix of the conversation
        or puts no EOS after the answer.
        """
        prompt = self.prompt(scenario)
        full = self.tokenizer.apply_chat_template(
            build_messages(scenario, self.system_prompt, self.system_role, answer), tokenize=False
        )
        if not full.startswith(prompt):
            raise ValueError("chat template: the prompt is not a prefix of the full conversation")
        completion = full[len(prompt):]
        end = completion.rfind(self.eos)
        if end < 0 or answer.strip() not in completion[:end]:
            raise ValueError(f"chat template: no {self.eos!r} after the answer")
        # ChatML adds "\n" after <|im_end|>; generation stops at EOS, so that newline is never produced.
        return prompt, completion[: end + len(self.eos)]

    def encode(self, scenario: str, answer: str) -> Formatted:
        """Render and tokenise one example; the template supplies BOS, so no special tokens are added."""
        prompt, completion = self.texts(scenario, answer)
        enc = self.tokenizer(prompt + completion, add_special_tokens=False, return_offsets_mapping=True)
        boundary = sum(1 for start, _ in enc["offset_mapping"] if start < len(prompt))
        return Formatted(prompt, completion, list(enc["input_ids"]), boundary)

    def encode_batch(self, scenarios: list[str], answers: list[str]) -> list[Formatted]:
        """`encode` for many examples with one batched (Rust-parallel) tokenizer call."""
        pairs = [self.texts(s, a) for s, a in zip(scenarios, answers)]
        enc = self.tokenizer([p + c for p, c in pairs], add_special_tokens=False, return_offsets_mapping=True)
        out = []
        for (prompt, completion), ids, offsets in zip(pairs, enc["input_ids"], enc["offset_mapping"]):
            boundary = sum(1 for start, _ in offsets if start < len(prompt))
            out.append(Formatted(prompt, completion, list(ids), boundary))
        return out
