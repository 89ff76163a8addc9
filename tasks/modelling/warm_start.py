"""Where a training starts: from scratch, or from the weights of a model trained before.

A nightly run starts from the champion's weights (a warm start) when the champion was trained with a
compatible setup: the same architecture, input size, preprocessing, alphabet and label length, so
the same network and head; it then fine-tunes. Otherwise a run with a `base` (tasks.registry.bases)
starts from the base's weights: every layer that fits, and an output head of its own alphabet whose
rows for the characters the base knows are the base's. Anything else starts from scratch, and the log
and the model card say why.
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)

# What must be equal between the champion's model.json and this run's for its weights to fit.
COMPATIBLE = ("arch", "height", "width", "preprocessing", "alphabet", "max_length", "num_classes")


def warm_start_parent(store, meta: dict, enabled: bool) -> tuple[dict | None, str]:
    """(the champion to start from, as models/latest.json names it, or None; why) for a run whose
    model is described by `meta` (tasks.train.model_metadata)."""
    if not enabled:
        return None, "warm_start is off"
    champion, theirs, why = champion_metadata(store)
    if theirs is None:
        return None, why
    differs = [f"{key} {theirs.get(key)!r} (this run: {meta.get(key)!r})" for key in COMPATIBLE
               if theirs.get(key) != meta.get(key)]
    if differs:
        return None, f"the champion {champion['version']} was trained with another setup: {'; '.join(differs)}"
    return champion, f"the champion {champion['version']} was trained with the same setup"


def champion_metadata(store) -> tuple[dict | None, dict | None, str]:
    """(the champion as models/latest.json names it, its model.json, ""), or with None where there is
    no champion or it has no model.json, and why."""
    from tasks.registry.versions import read_champion
    from tasks.store import MissingObjectError

    champion, _ = read_champion(store)
    if champion is None:
        return None, None, "there is no champion yet"
    try:
        return champion, store.get_json(f"{champion['folder']}model.json"), ""
    except MissingObjectError:
        return champion, None, f"the champion {champion['version']} has no model.json"


def _weighted_layers(model) -> list:
    """The layers with weights that a transfer pairs, in order. A dropout switch is left out: whether
    dropout is on is this run's choice, from its own training set's size."""
    from tasks.modelling.dropout import SwitchedDropout

    return [layer for layer in model.layers if layer.weights and not isinstance(layer, SwitchedDropout)]


def transfer_weights(model, source, all_or_nothing: bool = False,
                     alphabets: tuple[str, str] | None = None) -> tuple[int, list[str]]:
    """Copy into `model` the weights of `source`, layer by layer in order, where a layer is of the same
    kind with weights of the same shapes; (layers copied, names of the layers with weights left as
    built). With `all_or_nothing`, nothing is copied unless every layer fits. With `alphabets`
    (source's, model's) given and different, the output head (the `logits` layer, a class per
    character after class 0) is mapped by character, never by position (tasks.modelling.warm_start._map_head),
    and reported as kept, with the characters it has no row for."""
    remap = bool(alphabets) and alphabets[0] != alphabets[1]
    mine, theirs = _weighted_layers(model), _weighted_layers(source)
    pairs = [(layer, theirs[i] if i < len(theirs) else None) for i, layer in enumerate(mine)]
    fitting = [(layer, other) for layer, other in pairs if other is not None and type(other) is type(layer)
               and [w.shape for w in other.weights] == [w.shape for w in layer.weights]
               and not (remap and layer.name == "logits")]
    kept = [layer.name for layer, other in pairs if (layer, other) not in fitting]
    if len(theirs) != len(mine) and all_or_nothing:
        kept = kept or [f"{abs(len(theirs) - len(mine))} layer(s) more on one side"]
    if kept and all_or_nothing:
        return 0, kept
    for layer, other in fitting:
        layer.set_weights(other.get_weights())
    head = dict(pairs).get(model.get_layer("logits")) if remap and "logits" in kept else None
    if head is not None and head.name == "logits":
        kept[kept.index("logits")] = _map_head(model.get_layer("logits"), head, *alphabets)
    return len(fitting), kept


def one_case(alphabet: str) -> bool:
    """Whether the letters of `alphabet` (there are some) are all of one case: its labels then mean a
    letter whichever case a font draws it in."""
    letters = [c for c in alphabet if c.isalpha() and c.lower() != c.upper()]
    return bool(letters) and (all(c.islower() for c in letters) or all(c.isupper() for c in letters))


def _map_head(layer, source, source_alphabet: str, alphabet: str) -> str:
    """Give the output head `layer` the rows of `source`'s for class 0 and every character of
    `alphabet` that `source_alphabet` holds (for a one-case alphabet, the mean of the rows of both
    cases of a letter: either drawing is that letter); return how the head was made, for the log."""
    kernel, bias = (w.copy() for w in layer.get_weights())
    their_kernel, their_bias = source.get_weights()
    if kernel.shape[:-1] != their_kernel.shape[:-1]:
        return "logits"
    both = one_case(alphabet)
    new = ""
    for row, char in enumerate(alphabet, start=1):
        drawn = dict.fromkeys((char, char.lower(), char.upper()) if both else (char,))
        rows = [source_alphabet.index(c) + 1 for c in drawn if c in source_alphabet]
        if rows:
            kernel[..., row], bias[row] = their_kernel[..., rows].mean(axis=-1), their_bias[rows].mean()
        else:
            new += char
    kernel[..., 0], bias[0] = their_kernel[..., 0], their_bias[0]
    layer.set_weights([kernel, bias])
    how = "rows by character" + (", both cases of each letter" if both else "")
    return f"logits ({how}" + (f", new rows for {new!r})" if new else ")")
