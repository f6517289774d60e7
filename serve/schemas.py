"""Request and response bodies of the HTTP API (they make its OpenAPI document, served at /docs).

Requests reject unknown keys (a misspelt field is a 422, not silently ignored), except the
OpenAI-compatible chat request, whose clients send many optional parameters.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

EXAMPLE_TEXT = ("Client: Is the Harbor fund safe for my retirement savings?\n"
                "Advisor: I guarantee you will not lose a cent on it.")


class StrictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- requests ---------------------------------------------------------------------------------------------------
class AnalyzeRequest(StrictRequest):
    text: str = Field(description="The communication to judge (chat, e-mail or call transcript).",
                      examples=[EXAMPLE_TEXT])
    id: str | None = Field(None, description="Your identifier, echoed back and written to the audit log.",
                           examples=["msg-000123"])
    metadata: dict[str, Any] | None = Field(None, description="Free-form data echoed back unchanged.",
                                            examples=[{"channel": "chat"}])
    adapter: str | None = Field(None, description="Model (adapter) name from GET /v1/models; default: the "
                                "service's default. Also settable by the serve_multiplexed_model_id header.",
                                examples=[None])


class BatchAnalyzeRequest(StrictRequest):
    items: list[AnalyzeRequest] = Field(description="Communications to judge; each may name its own adapter.",
                                        examples=[[{"text": EXAMPLE_TEXT, "id": "a"}]])
    adapter: str | None = Field(None, description="Adapter for items that name none.")


class ScoreRequest(StrictRequest):
    text: str | None = Field(None, description="One communication (give `text` or `texts`).",
                             examples=[EXAMPLE_TEXT])
    texts: list[str] | None = Field(None, description="Several communications.")
    adapter: str | None = Field(None, description="Model (adapter) name; default: the service's default.")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str = Field(examples=["user"])
    content: str | list[dict[str, Any]] | None = Field(None, description="Text, or OpenAI content parts "
                                                        "(only `text` parts are read).")


class ChatCompletionRequest(BaseModel):
    """OpenAI chat.completions request; the last user message is the communication to judge."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(description="Model (adapter) name from GET /v1/models.", examples=["base"])
    messages: list[ChatMessage] = Field(examples=[[{"role": "user", "content": EXAMPLE_TEXT}]])
    stream: bool | None = Field(False, description="Must be false: answers are whole verdicts.")


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
    verdict_probability: float = Field(description="P(NON_COMPLIANT) from one forward pass.")
    format_mass: float = Field(description="Probability the model puts on either verdict token; low means it "
                               "would not answer in the trained format.")
    parse_status: Literal["ok", "repaired", "invalid_schema", "parse_error"]
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
