"""One deterministic, grammar-constrained model call per session, then forget it.

The call (bench/session.py repeats it bare as the baseline)::

    llama.create_chat_completion(
        messages=messages_for(contract, values),   # [system?], user = rendered prompt
        grammar=LlamaGrammar.from_string(grammar_for(output), verbose=False),
        temperature=0.0, seed=contract.decoding.seed,
        max_tokens=contract.decoding.max_tokens)

with ``temperature=0`` llama.cpp samples greedily; the GBNF grammar admits only
the output's enum values, and ``run`` checks the text once more before it is
released. Before and after each call ``erase_state`` wipes the token and logit
buffers, resets the context and clears the KV cache, so nothing of one session
is visible to the next. Nothing here logs a prompt, an input or an output.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from attestation.errors import TcmeError
from tcme.wire.contract import Contract, OutputSpec, render_prompt


class InferenceError(TcmeError):
    """The model call failed or produced something the contract does not allow."""


def grammar_for(output: OutputSpec) -> str:
    """GBNF admitting exactly one of the output's enum values.

    Enum values are restricted (tcme.wire.contract.ENUM_VALUE) to characters
    that need no escaping inside a GBNF string literal.
    """
    alternatives = " | ".join(f'"{value}"' for value in output.values)
    return f"root ::= {alternatives}\n"


def messages_for(contract: Contract, values: Mapping[str, Any]) -> list[dict[str, str]]:
    """Chat messages: the contract's system text (if any), then the rendered prompt."""
    messages = []
    if contract.system is not None:
        messages.append({"role": "system", "content": contract.system})
    messages.append({"role": "user", "content": render_prompt(contract.prompt, values)})
    return messages


def erase_state(llama: Any) -> None:
    """Forget everything the last call left in the model context.

    Zeroes the token ids and logits llama-cpp-python keeps in Python-side
    buffers, resets its token count and clears the KV cache (llama_memory_clear
    with data=True). No prompt cache is ever attached (``llama.cache`` is None).
    """
    import llama_cpp

    used = int(llama.n_tokens)
    if used:
        llama.input_ids[:used] = 0
        rows = min(used, llama.scores.shape[0])
        llama.scores[:rows, :] = 0.0
    llama.reset()
    memory = llama_cpp.llama_get_memory(llama.ctx)
    if memory is not None:
        llama_cpp.llama_memory_clear(memory, True)
    llama.set_cache(None)


class Inference:
    """Runs contracts on one loaded llama.cpp model, one session at a time."""

    def __init__(self, llama: Any) -> None:
        self._llama = llama
        self._lock = threading.Lock()

    @property
    def llama(self) -> Any:
        """The underlying ``llama_cpp.Llama`` (tests inspect its state)."""
        return self._llama

    def run(self, contract: Contract, values: Mapping[str, Any]) -> dict[str, str]:
        """Compute every output of ``contract`` from the merged party ``values``.

        Raises ``InferenceError`` (check ``inference.*`` or ``output.constraint``);
        errors never include the prompt or the generated text.
        """
        from llama_cpp import LlamaGrammar

        if len(contract.outputs) != 1:
            raise InferenceError(
                "inference.outputs",
                "this runtime computes one output per session",
                expected=1,
                actual=len(contract.outputs),
            )
        output = contract.outputs[0]
        with self._lock:
            erase_state(self._llama)
            try:
                response = self._llama.create_chat_completion(
                    messages=messages_for(contract, values),
                    grammar=LlamaGrammar.from_string(grammar_for(output), verbose=False),
                    temperature=0.0,
                    seed=contract.decoding.seed,
                    max_tokens=contract.decoding.max_tokens,
                )
                text = response["choices"][0]["message"]["content"]
            except ValueError as err:
                # llama-cpp-python raises ValueError when the prompt exceeds the context.
                raise InferenceError(
                    "inference.context", f"model call refused: {type(err).__name__}"
                ) from None
            finally:
                erase_state(self._llama)
        if text not in output.values:
            # The grammar should make this impossible; never release an off-contract output.
            raise InferenceError(
                "output.constraint",
                f"model output for {output.name!r} is not one of the contract's values",
            )
        return {output.name: text}
