"""Request and response bodies of the HTTP API (they make its OpenAPI document, served at /docs).

Requests reject unknown keys (a misspelt field is a 422, not silently ignored), except the
OpenAI-compatible chat request, whose clients send many optional parameters. Every string a request
carries must be valid Unicode: JSON allows escapes of lone surrogates (`"\\ud800"`), which no
tokenizer, audit file or response can encode; they are a 422 naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

EXAMPLE_TEXT = ("Client: Is the Harbor fund safe for my retirement savings?\n"
                "Advisor: I guarantee you will not lose a cent on it.")


def _lone_surrogate(value: Any, path: tuple = ()) -> str | None:
    """Where in `value` (a string, or lists/dicts of them) the first lone surrogate sits, else None."""
    if isinstance(value, str):
        where = f" of {'.'.join(map(str, path))}" if path else ""
        for i, ch in enumerate(value):
            if "\ud800" <= ch <= "\udfff":
                return f"character {i}{where} is \\u{ord(ch):04x}"
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _lone_surrogate(key, path) if isinstance(key, str) else None
        if found or (found := _lone_surrogate(item, (*path, key))):
            return found
    return None


def _valid_unicode(value: Any) -> Any:
    found = _lone_surrogate(value)
    if found:
        raise PydanticCustomError(
            "invalid_unicode", "not valid Unicode: {found}, a lone surrogate (half of a UTF-16 pair); send the "
            "text as UTF-8 or as complete \\uXXXX\\uXXXX pairs", {"found": found})
    return value


Text = Annotated[str, AfterValidator(_valid_unicode)]
"""A request string that must be valid Unicode (no lone surrogates)."""
Metadata = Annotated[dict[str, Any], AfterValidator(_valid_unicode)]
"""Free-form request data: every string in it, keys included, must be valid Unicode."""


class StrictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- requests ---------------------------------------------------------------------------------------------------
class AnalyzeRequest(StrictRequest):
    text: Text = Field(description="The communication to judge (chat, e-mail or call transcript).",
                      examples=[EXAMPLE_TEXT])
    id: Text | None = Field(None, description="Your identifier, echoed back and written to the audit log.",
                            examples=["msg-000123"])
    metadata: Metadata | None = Field(None, description="Free-form data echoed back unchanged.",
                                            examples=[{"channel": "chat"}])
    adapter: Text | None = Field(None, description="Model (adapter) name from GET /v1/models; default: the "
                                "service's default. Also settable by the serve_multiplexed_model_id header.",
                                examples=[None])


class BatchAnalyzeRequest(StrictRequest):
    items: list[AnalyzeRequest] = Field(description="Communications to judge; each may name its own adapter.",
                                        examples=[[{"text": EXAMPLE_TEXT, "id": "a"}]])
    adapter: Text | None = Field(None, description="Adapter for items that name none.")


class ScoreRequest(StrictRequest):
    text: Text | None = Field(None, description="One communication (give `text` or `texts`).",
                              examples=[EXAMPLE_TEXT])
    texts: list[Text] | None = Field(None, description="Several communications.")
    adapter: Text | None = Field(None, description="Model (adapter) name; default: the service's default.")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Text = Field(examples=["user"])
    content: Annotated[str | list[dict[str, Any]] | None, AfterValidator(_valid_unicode)] = Field(
        None, description="Text, or OpenAI content parts (only `text` parts are read).")


class ChatCompletionRequest(BaseModel):
    """OpenAI chat.completions request; the last user message is the communication to judge."""

    model_config = ConfigDict(extra="allow")
    model: Text = Field(description="Model (adapter) name from GET /v1/models.", examples=["base"])
    messages: list[ChatMessage] = Field(examples=[[{"role": "user", "content": EXAMPLE_TEXT}]])
    stream: bool | None = Field(False, description="Must be false: answers are whole verdicts.")
    response_format: dict[str, Any] | None = Field(
        None, description="OpenAI response_format. {type: json_object} or {type: json_schema, ...} asks for the "
        "verdict JSON: decoded under the verdict grammar (the replica's engine.constrained, on by default; a "
        "replica without it answers 400) and returned as the message content. {type: text} or null: the same "
        "answer, raw text when no verdict could be read.", examples=[{"type": "json_object"}])


# -- responses --------------------------------------------------------------------------------------------------
class Verdict(BaseModel):
    """The detector's verdict, normalised; fields it could not read are null."""

    final_verdict: Literal["COMPLIANT", "NON_COMPLIANT"] | None = None
    executive_summary: str | None = None
    rule_violated: str | None = None
    compliance_topic: str | None = None
    severity: str | None = None
    evidence_list: list[str] | None = None
    reasoning_trace: str | None = None


class EvidenceCheck(BaseModel):
    quote: str
    grounded: bool = Field(description="The quote occurs in the communication (verbatim or a near match).")
    exact: bool = Field(description="Verbatim after whitespace normalisation.")
    score: float = Field(description="Fuzzy match score 0-100.")
    start: int | None = Field(None, description="Where the quote starts in the request's text (character offset; "
                              "null when not found there).")
    end: int | None = Field(None, description="Where the quote ends in the request's text (exclusive).")


class WindowScore(BaseModel):
    """One window of the request's text: a text too long for one prompt is judged in overlapping windows."""

    start: int = Field(description="First character of the window in the request's text.")
    end: int = Field(description="End of the window (exclusive).")
    verdict_probability: float = Field(description="P(NON_COMPLIANT) of this window.")
    prompt_tokens: int
    explained: bool = Field(description="The verdict, evidence and usage come from this window (the riskiest).")


class ModelRef(BaseModel):
    name: str = Field(description="The model name the request was served by (base or an adapter).")
    base: str
    adapter: str | None
    version: str


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class Analysis(BaseModel):
    request_id: str = Field(description="UUID of this decision (also in the audit log).")
    id: str | None = None
    verdict: Verdict | None = Field(description="Null when no verdict could be read (see parse_status).")
    verdict_probability: float = Field(description="P(NON_COMPLIANT) from one forward pass (of the riskiest "
                                       "window when the text is judged in windows).")
    format_mass: float = Field(description="Probability the model puts on either verdict token; low means it "
                               "would not answer in the trained format.")
    parse_status: Literal["ok", "repaired", "invalid_schema", "parse_error", "truncated"] = Field(
        description="ok under the verdict grammar (engine.constrained); truncated: the answer hit the new-token "
        "budget before it ended.")
    parse_error: str = ""
    parse_problems: list[str] = []
    repairs: list[str] = []
    evidence: list[EvidenceCheck]
    all_evidence_grounded: bool | None = Field(description="Null when the verdict quotes nothing.")
    raw_text: str = Field(description="The model's answer as generated (what the verdict was parsed from).")
    finished: bool = Field(description="False when the answer hit the new-token budget.")
    usage: Usage
    model: ModelRef
    batch_size: int = Field(description="Communications the replica ran through the model together.")
    latency_ms: float
    metadata: dict[str, Any] | None = None
    windows: list[WindowScore] | None = Field(None, description="/v1/analyze: the windows the text was judged in "
                                              "(one when it fits a prompt), each with its probability.")


class BatchAnalysis(BaseModel):
    request_id: str
    results: list[Analysis]
    latency_ms: float


class ScoreResult(BaseModel):
    request_id: str = Field(description="UUID of this decision (also in the audit log).")
    verdict_probability: float
    format_mass: float
    prompt_tokens: int
    batch_size: int


class ScoreResponse(BaseModel):
    request_id: str
    results: list[ScoreResult]
    model: ModelRef
    latency_ms: float


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "complyray"
    base: str
    adapter_dir: str | None
    version: str
    default: bool


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ChatChoice(BaseModel):
    index: int
    message: dict[str, Any]
    finish_reason: Literal["stop", "length"]


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: dict[str, int]
    complyray: dict[str, Any] = Field(description="The full analysis (probability, grounding, parse status).")


class ErrorBody(BaseModel):
    message: str
    type: str
    code: int
    problems: list[str] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
