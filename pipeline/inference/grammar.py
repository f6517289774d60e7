"""The verdict grammar: every generated answer is a verdict JSON object, by construction.

The verdict schema (`pipeline.schema`: fixed key order with ``final_verdict`` first, enums for the
verdict and severity, a list of strings for evidence, strings elsewhere, written exactly as training
writes answers: ``json.dumps`` separators, one line) is compiled once per tokenizer into a token-level
grammar. At every decoding step the grammar's state gives a bitmask of allowed next tokens; masked
logits go to -inf before the greedy argmax, so the answer cannot leave the schema, and once the object
closes only an end-of-sequence token is allowed. A COMPLIANT verdict's label fields are forced
(rule/topic ``None``, severity ``NONE``) and a NON_COMPLIANT one needs a severity other than NONE and at
least one evidence quote, the consistency rules `pipeline.schema.label_problems` checks.

Why xgrammar (0.2.x) and not llguidance or outlines-core:

* its JSON-schema compiler, token bitmask and matcher are one C++ package with a small Python API
  (`GrammarMatcher.fill_next_token_bitmask`, `accept_token`, `rollback`), and the bitmask is applied by
  a fused kernel on CUDA (`apply_token_bitmask_inplace`), on CPU by a C++ loop;
* jump-forward decoding is built in (`find_jump_forward_tokens`: the tokens the grammar forces from
  the current state), and `rollback` makes speculative (prompt-lookup) drafts cheap to check, the two
  things the decoder's draft-and-verify loop needs (pipeline/inference/decoder.py);
* it is what vLLM and SGLang use by default, so its tokenizer handling (SentencePiece byte fallback
  for Mistral v3, byte-level BPE for SmolLM2) is exercised on the same model families as ours.
  llguidance is as fast but its Python API is built around its own Lark dialect and tokenizer
  wrappers; outlines-core compiles regex-to-token indexes (a JSON schema with free-text fields makes
  a large index) and has no jump-forward.
"""

from __future__ import annotations

import json
import logging

from pipeline.schema import NONE_LABEL, SEVERITIES, VERDICT_FIELDS

log = logging.getLogger(__name__)

SEPARATORS = (", ", ": ")  # json.dumps' defaults: the answers training writes (formatting.answer_json)


def verdict_json_schema(max_chars: int | None = None, max_quotes: int | None = None) -> dict:
    """The verdict schema as JSON Schema: one object shape per verdict, keys in VERDICT_FIELDS order.

    `max_chars` bounds every text field (characters) and `max_quotes` the evidence list; None: unbounded.
    """
    text = {"type": "string", "minLength": 1, **({"maxLength": max_chars} if max_chars else {})}
    quotes = {"maxItems": max_quotes} if max_quotes else {}

    def shape(verdict: str, label: dict, severity: dict, min_quotes: int) -> dict:
        props = {"final_verdict": {"const": verdict}, "executive_summary": text, "rule_violated": label,
                 "compliance_topic": label, "severity": severity,
                 "evidence_list": {"type": "array", "items": text, "minItems": min_quotes, **quotes},
                 "reasoning_trace": text}
        assert tuple(props) == VERDICT_FIELDS  # the grammar writes keys in this order
        return {"type": "object", "properties": props, "required": list(VERDICT_FIELDS),
                "additionalProperties": False}

    return {"anyOf": [
        shape("COMPLIANT", {"const": NONE_LABEL}, {"const": "NONE"}, 0),
        shape("NON_COMPLIANT", text, {"enum": [s for s in SEVERITIES if s != "NONE"]}, 1),
    ]}


class VerdictGrammar:
    """The compiled verdict grammar for one tokenizer and model vocabulary (build once per engine).

    `vocab_size` is the model's logits width (may exceed the tokenizer's); `eos_ids` end an answer;
    `max_chars` / `max_quotes` bound text fields and the evidence list (`verdict_json_schema`).
    Raises ImportError when xgrammar is not installed (engine.constrained=false runs without it).
    """

    def __init__(self, tokenizer, vocab_size: int, eos_ids: list[int], max_chars: int | None = None,
                 max_quotes: int | None = None):
        import xgrammar as xgr

        self.vocab_size = vocab_size
        self.eos_ids = list(eos_ids)
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=self.eos_ids)
        # xgrammar takes a token for text unless it decodes to nothing; Mistral v3's control tokens
        # ([INST], [control_8]...) decode to their names. Blank every special token but the stop tokens,
        # so none can appear inside an answer (decoding skips special tokens: the text would change).
        vocab = list(info.decoded_vocab)
        for token in set(tokenizer.all_special_ids) - set(self.eos_ids):
            if token < len(vocab):
                vocab[token] = b""
        info = xgr.TokenizerInfo(vocab, xgr.VocabType.RAW, vocab_size=vocab_size, stop_token_ids=self.eos_ids,
                                 add_prefix_space=info.add_prefix_space)
        schema = xgr.Grammar.from_json_schema(json.dumps(verdict_json_schema(max_chars, max_quotes)), any_whitespace=False,
                                              separators=SEPARATORS)
        # SentencePiece tokenizers (Mistral v3) start the answer with '▁{"': one optional space first.
        grammar = xgr.Grammar.concat(xgr.Grammar.from_ebnf('root ::= " "?'), schema)
        self.compiled = xgr.GrammarCompiler(info, max_threads=1).compile_grammar(grammar)

    def matchers(self, n: int) -> list:
        """`n` fresh matchers, one per answer, each at the start of the grammar."""
        import xgrammar as xgr

        return [xgr.GrammarMatcher(self.compiled, override_stop_tokens=self.eos_ids) for _ in range(n)]

    def bitmask(self, n: int):
        """An int32 CPU bitmask for `n` rows (filled by `fill`)."""
        import xgrammar as xgr

        return xgr.allocate_token_bitmask(n, self.vocab_size)


class RowConstraint:
    """The grammar state of a batch's rows during one generation: mask the logits, accept the choices.

    Rows that have finished (terminated matchers) are left unmasked; their tokens are ignored anyway.
    """

    def __init__(self, grammar: VerdictGrammar, rows: int):
        self.grammar = grammar
        self.matchers = grammar.matchers(rows)
        self._mask = grammar.bitmask(rows)
        self._draft_mask = None  # [rows * span] bitmask of draft verification, grown on demand

    def mask(self, logits, rows: list[int] | None = None) -> None:
        """Set the logits [n, vocab] of disallowed next tokens to -inf, in place, for matcher rows `rows`
        (default: all rows; logits row i belongs to matcher rows[i])."""
        import xgrammar as xgr

        rows = list(range(len(self.matchers))) if rows is None else rows
        live = []
        for i, row in enumerate(rows):
            m = self.matchers[row]
            if not m.is_terminated():
                m.fill_next_token_bitmask(self._mask, i)
                live.append(i)
        if not live:
            return
        mask = self._mask[:len(rows)]
        if logits.device.type != "cpu":
            mask = mask.to(logits.device, non_blocking=True)
        xgr.apply_token_bitmask_inplace(logits, mask, vocab_size=self.grammar.vocab_size, indices=live)

    def accept(self, row: int, token: int) -> bool:
        """Advance row `row` by `token` (False when the grammar refuses it or the row has terminated)."""
        m = self.matchers[row]
        return not m.is_terminated() and m.accept_token(token)

    def forced(self, row: int) -> list[int]:
        """Tokens the grammar forces next for `row` (jump-forward), empty when the model must choose."""
        m = self.matchers[row]
        return [] if m.is_terminated() else list(m.find_jump_forward_tokens())

    def valid_prefix(self, row: int, draft: list[int]) -> int:
        """How many leading tokens of `draft` the grammar allows from `row`'s state (state unchanged)."""
        m = self.matchers[row]
        n = 0
        for token in draft:
            if m.is_terminated() or not m.accept_token(token):
                break
            n += 1
        if n:
            m.rollback(n)
        return n

    def mask_drafts(self, logits, drafts: dict[int, list[int]]) -> None:
        """Mask draft-verification logits [rows, span, vocab] in place: position j of row r by r's state
        after the first j tokens of its draft `drafts[r]` (grammar-valid, from `valid_prefix`). The rows'
        matchers are left after their whole draft; `settle` then rolls each back to what was kept."""
        import xgrammar as xgr

        rows, span, vocab = logits.shape
        if self._draft_mask is None or self._draft_mask.shape[0] < rows * span:
            self._draft_mask = self.grammar.bitmask(rows * span)
        live = []
        for r, draft in drafts.items():
            m = self.matchers[r]
            for j in range(len(draft) + 1):
                m.fill_next_token_bitmask(self._draft_mask, r * span + j)
                live.append(r * span + j)
                if j < len(draft) and not m.accept_token(draft[j]):
                    raise AssertionError(f"row {r}: draft token {draft[j]} was checked against the grammar")
        if not live:
            return
        mask = self._draft_mask[:rows * span]
        if logits.device.type != "cpu":
            mask = mask.to(logits.device, non_blocking=True)
        xgr.apply_token_bitmask_inplace(logits.view(rows * span, vocab), mask, vocab_size=self.grammar.vocab_size,
                                        indices=live)

    def settle(self, row: int, drafted: int, kept: int, token: int) -> None:
        """After verification: keep the first `kept` of `row`'s `drafted` draft tokens, then accept `token`."""
        m = self.matchers[row]
        if drafted > kept:
            m.rollback(drafted - kept)
        if not m.accept_token(token):
            raise AssertionError(f"row {row}: the grammar refused its own masked choice {token}")


class GrammarLogitsProcessor:
    """The verdict grammar as a transformers logits processor (engine.decoder=generate): each call advances
    every row's matcher by the token generate chose last, then masks the next token's scores."""

    def __init__(self, grammar: VerdictGrammar, rows: int):
        self.constraint = RowConstraint(grammar, rows)
        self._prompt_width: int | None = None

    def __call__(self, input_ids, scores):
        """`input_ids` [rows, prompt + new so far], `scores` [rows, vocab] -> the scores, masked in place."""
        if self._prompt_width is None:
            self._prompt_width = input_ids.shape[1]
        else:
            for row, token in enumerate(input_ids[:, -1].tolist()):
                self.constraint.accept(row, token)  # finished rows (pad after EOS) are refused: ignored
        self.constraint.mask(scores)
        return scores
