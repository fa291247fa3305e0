"""Deterministic, grammar-constrained model calls per session, then forget them.

The call (bench/session.py repeats it bare as the baseline)::

    llama.create_chat_completion(
        messages=messages_for(contract, values),   # [system?], user = rendered prompt
        grammar=LlamaGrammar.from_string(grammar_for(output), verbose=False),
        temperature=0.0, seed=contract.decoding.seed,
        max_tokens=contract.decoding.max_tokens)

with ``temperature=0`` llama.cpp samples greedily. ``enum-decision`` contracts
make exactly this one call. ``general`` contracts make one such call per
output, in contract order (each output is a model turn with its own prompt,
system message, token budget and grammar; a later prompt may use an earlier
output's value); the contract's ``stop`` strings apply to every turn.

Constraints: the grammar admits only what the output allows (enum values, the
contract's GBNF, or llama.cpp's grammar for the JSON Schema); a turn that hits
its token budget before the grammar completed is refused
(``output.incomplete``); the text then passes the output's final check
(``OutputSpec.normalize``) before it is released or used by a later turn.
A contract grammar is checked by llama.cpp's own parser before use: a grammar
llama.cpp cannot parse would give a null sampler.

Statelessness: after every turn (and before it, unless the context is still
provably empty) ``erase_state`` zeroes the token ids llama-cpp-python keeps,
llama.cpp's last logits row, frees the kept sampler chain, resets the context
and clears the KV cache data, so a turn sees only its own prompt (what the
information-flow labels assume) and nothing of one session reaches the next;
``verify_erased`` then checks all of it and refuses the result otherwise.
Nothing here logs a prompt, an input or an output.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from attestation.errors import TcmeError
from tcme.contract.capability import running_budget
from tcme.contract.errors import OutputValueError
from tcme.contract.model import Contract, OutputSpec
from tcme.contract.template import render_prompt


class InferenceError(TcmeError):
    """The model call failed or produced something the contract does not allow."""


def grammar_for(output: OutputSpec) -> str:
    """GBNF for one output: exactly one enum value, the contract's GBNF, or the JSON grammar."""
    return output.grammar()


def messages_for(contract: Contract, values: Mapping[str, Any]) -> list[dict[str, str]]:
    """``enum-decision``: the contract's system text (if any), then the rendered prompt."""
    messages = []
    if contract.system is not None:
        messages.append({"role": "system", "content": contract.system})
    messages.append({"role": "user", "content": render_prompt(contract.prompt, values)})
    return messages


def turn_messages(output: OutputSpec, texts: Mapping[str, str]) -> list[dict[str, str]]:
    """``general``: the turn's system text (if any), then its prompt rendered from ``texts``.

    ``texts`` maps input and earlier output names to their prompt text.
    """
    assert output.turn is not None
    messages = []
    if output.turn.system is not None:
        messages.append({"role": "system", "content": output.turn.system})
    messages.append({"role": "user", "content": render_prompt(output.turn.prompt, texts)})
    return messages


def erase_state(llama: Any) -> None:
    """Forget everything the last call left in the model context.

    Zeroes the token ids llama-cpp-python keeps (its token buffer and its
    reusable batch) and the last logits row llama.cpp keeps in the context,
    frees the last call's sampler chain, resets the token count and clears the
    KV cache (llama_memory_clear with data=True). No prompt cache is ever
    attached (``llama.cache`` is None).

    The token ids are zeroed in full, not only up to the current token count:
    llama-cpp-python's own ``reset()`` (and its prefix reuse) lowers ``n_tokens``
    without clearing what lies beyond it. The Python-side ``scores`` buffer is
    zeroed only when ``logits_all`` is on: otherwise llama-cpp-python never
    writes it (sampling runs in llama.cpp), and zeroing ~20 MB of rows that are
    already zero would cost ~2.5 ms per call; ``tests/enclave`` checks that it
    stays zero.
    """
    import llama_cpp

    llama.input_ids[:] = 0
    if llama._logits_all:
        llama.scores[:, :] = 0.0
    # llama-cpp-python keeps the last call's sampler chain: its grammar state and its
    # penalty window hold the generated tokens. Free it now rather than at the next call.
    sampler = getattr(llama, "_sampler", None)
    if sampler is not None:
        llama._sampler = None
        sampler.close()
    llama.reset()
    ctx = llama.ctx
    memory = llama_cpp.llama_get_memory(ctx)
    if memory is not None:
        llama_cpp.llama_memory_clear(memory, True)
    _zero_last_logits(ctx, llama.n_vocab())
    _zero_batch_tokens(llama)
    llama.set_cache(None)


def _batch_tokens(llama: Any) -> Any:
    """llama-cpp-python's reusable ``llama_batch`` token array, as numpy (None if absent).

    ``eval`` copies each batch's token ids into it and a later, shorter batch
    overwrites only its own prefix: after a call it still holds most of the
    prompt, party inputs included.
    """
    import numpy as np

    batch = getattr(llama, "_batch", None)
    if batch is None or batch.batch is None or not batch.batch.token:
        return None
    return np.ctypeslib.as_array(batch.batch.token, shape=(batch._n_tokens,))


def _zero_batch_tokens(llama: Any) -> None:
    """Zero the batch's token ids (positions and output flags carry no input)."""
    tokens = _batch_tokens(llama)
    if tokens is not None:
        tokens[:] = 0


def _zero_last_logits(ctx: Any, n_vocab: int) -> None:
    """Zero llama.cpp's output row: the last decode's logits, a function of the prompt.

    With ``logits_all`` off every batch asks for one output row only, so the
    context's logits buffer holds exactly one row of ``n_vocab`` floats. (With
    it on there would be a row per token; ``Inference`` refuses such models.)
    """
    import ctypes

    import llama_cpp

    logits = llama_cpp.llama_get_logits(ctx)
    if logits:
        ctypes.memset(logits, 0, n_vocab * ctypes.sizeof(ctypes.c_float))


_EMPTY_CONTEXT = {
    "n_tokens": 0,
    "kv_max_pos": -1,
    "token_ids": 0,
    "batch_tokens": 0,
    "logits": 0,
    "sampler": 0,
}


def context_state(llama: Any) -> dict[str, int]:
    """What the context holds now: tokens evaluated, highest KV position, non-zero token
    ids (llama-cpp-python's token buffer and its batch), non-zero values in llama.cpp's
    last logits row, and whether a sampler is held.

    An empty context reads ``_EMPTY_CONTEXT``: all zero, ``kv_max_pos`` -1.
    """
    import llama_cpp
    import numpy as np

    memory = llama_cpp.llama_get_memory(llama.ctx)
    kv_max = -1 if memory is None else int(llama_cpp.llama_memory_seq_pos_max(memory, 0))
    batch = _batch_tokens(llama)
    logits = llama_cpp.llama_get_logits(llama.ctx)
    row = np.ctypeslib.as_array(logits, shape=(llama.n_vocab(),)) if logits else np.zeros(1)
    return {
        "n_tokens": int(llama.n_tokens),
        "kv_max_pos": kv_max,
        "token_ids": int(np.count_nonzero(llama.input_ids)),
        "batch_tokens": 0 if batch is None else int(np.count_nonzero(batch)),
        "logits": int(np.count_nonzero(row)),
        "sampler": int(getattr(llama, "_sampler", None) is not None),
    }


def verify_erased(llama: Any) -> None:
    """Raise ``InferenceError("state.erase")`` unless the context is empty after ``erase_state``.

    This is what the receipt's ``stateless`` statement rests on: the enclave
    checks it after every turn rather than assuming the reset worked.
    """
    state = context_state(llama)
    if state != _EMPTY_CONTEXT:
        raise InferenceError(
            "state.erase",
            "the model context is not empty after erasing",
            expected=" ".join(f"{k}={v}" for k, v in _EMPTY_CONTEXT.items()),
            actual=" ".join(f"{k}={v}" for k, v in state.items()),
        )
    if llama.cache is not None:
        raise InferenceError("state.erase", "a prompt cache is attached to the model")


def check_grammar_with_llama(llama: Any, grammar: str) -> None:
    """Parse ``grammar`` with llama.cpp itself; raise ``InferenceError`` if it would fail.

    llama.cpp returns a null sampler for a grammar it cannot parse, and adding a
    null sampler to the chain crashes; tcme.contract.gbnf catches the same
    mistakes earlier, this is the enclave's last line.
    """
    import llama_cpp

    sampler = llama_cpp.llama_sampler_init_grammar(
        llama._model.vocab, grammar.encode("utf-8"), b"root"
    )
    if not sampler:
        raise InferenceError("output.grammar", "llama.cpp cannot parse the output grammar")
    llama_cpp.llama_sampler_free(sampler)


class Inference:
    """Runs contracts on one loaded llama.cpp model, one session at a time."""

    def __init__(self, llama: Any) -> None:
        if llama._logits_all:
            # Per-token logits would be kept for every position (Python side and in
            # llama.cpp); contracts never need them, so erase_state need not chase them.
            raise InferenceError(
                "inference.logits_all",
                "the enclave's model must be loaded with logits_all=False",
                expected=False,
                actual=True,
            )
        self._llama = llama
        self._lock = threading.Lock()
        # True while the context is known wiped: the last call's erase_state (which
        # zeroes the KV data, ~5 ms) ran and verify_erased passed. A call then only
        # re-reads the (cheap) context state and wipes again only if anything used the
        # model since, instead of wiping an already-wiped cache on the critical path.
        self._wiped = False

    @property
    def llama(self) -> Any:
        """The underlying ``llama_cpp.Llama`` (tests inspect its state)."""
        return self._llama

    def run(self, contract: Contract, values: Mapping[str, Any]) -> dict[str, str]:
        """Compute every output of ``contract`` from the merged party ``values``.

        Raises ``InferenceError`` (check ``inference.*``, ``output.*`` or
        ``state.erase``); errors never include a prompt or generated text.
        """
        if contract.has_turns:
            return self._run_turns(contract, values)
        return self._run_enum_decision(contract, values)

    # -- kind "enum-decision" ---------------------------------------------------------------

    def _run_enum_decision(self, contract: Contract, values: Mapping[str, Any]) -> dict[str, str]:
        if len(contract.outputs) != 1:
            raise InferenceError(
                "inference.outputs",
                "this runtime computes one output per enum-decision session",
                expected=1,
                actual=len(contract.outputs),
            )
        output = contract.outputs[0]
        with self._lock:
            text, _finish = self._call(
                messages_for(contract, values),
                grammar_for(output),
                seed=contract.decoding.seed,
                max_tokens=contract.decoding.max_tokens,
                stop=(),
            )
        if text not in output.values:
            # The grammar should make this impossible; never release an off-contract output.
            raise InferenceError(
                "output.constraint",
                f"model output for {output.name!r} is not one of the contract's values",
            )
        return {output.name: text}

    # -- kind "general" ---------------------------------------------------------------------

    def _run_turns(self, contract: Contract, values: Mapping[str, Any]) -> dict[str, str]:
        texts = {spec.name: spec.render(values[spec.name]) for spec in contract.inputs}
        results: dict[str, str] = {}
        try:
            with self._lock:
                for output in contract.outputs:
                    assert output.turn is not None
                    grammar = grammar_for(output)
                    check_grammar_with_llama(self._llama, grammar)
                    text, finish = self._call(
                        turn_messages(output, texts),
                        grammar,
                        seed=contract.decoding.seed,
                        max_tokens=output.turn.max_tokens,
                        stop=contract.decoding.stop,
                    )
                    if finish == "length":
                        raise InferenceError(
                            "output.incomplete",
                            f"output {output.name!r} used its whole token budget "
                            f"({output.turn.max_tokens}) before its grammar completed",
                        )
                    try:
                        value = output.normalize(text)
                    except OutputValueError as err:
                        raise InferenceError(
                            "output.constraint", f"output {output.name!r}: {err.detail}"
                        ) from None
                    results[output.name] = value
                    texts[output.name] = value
        except BaseException:
            results.clear()
            raise
        finally:
            texts.clear()
        return results

    # -- one model call -----------------------------------------------------------------------

    def _call(
        self,
        messages: list[dict[str, str]],
        grammar: str,
        *,
        seed: int,
        max_tokens: int,
        stop: tuple[str, ...],
    ) -> tuple[str, str]:
        """One erased-before, erased-after, verified-empty completion: (text, finish reason)."""
        from llama_cpp import LlamaGrammar

        # Capability tests draw on the contract's token budget (None in a real session).
        budget = running_budget()
        wanted = max_tokens
        if budget is not None:
            max_tokens = budget.grant(max_tokens)
        if not (self._wiped and context_state(self._llama) == _EMPTY_CONTEXT):
            erase_state(self._llama)
        self._wiped = False
        try:
            response = self._llama.create_chat_completion(
                messages=messages,
                grammar=LlamaGrammar.from_string(grammar, verbose=False),
                temperature=0.0,
                seed=seed,
                max_tokens=max_tokens,
                stop=list(stop) or None,
            )
            choice = response["choices"][0]
            text, finish = choice["message"]["content"], str(choice.get("finish_reason"))
            usage = response.get("usage") or {}
        except ValueError as err:
            # llama-cpp-python raises ValueError when the prompt exceeds the context.
            raise InferenceError(
                "inference.context", f"model call refused: {type(err).__name__}"
            ) from None
        finally:
            messages.clear()
            erase_state(self._llama)
        verify_erased(self._llama)
        self._wiped = True
        if budget is not None:
            budget.charge(
                int(usage.get("prompt_tokens", 0)),
                int(usage.get("completion_tokens", max_tokens)),  # unknown: all of it
                granted=max_tokens,
                wanted=wanted,
            )
        return text or "", finish
