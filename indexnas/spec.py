"""IndexSpec: one IndexNet choice for one down/up pair, with a compact string form.

The string form is used everywhere a choice is named (CLI, search parameters, recipes,
reports): ``family[-nl][-c][@enc=NORM,dec=NORM]``, for example ``m2o-nl-c``, ``holistic``,
``o2o-shared-nl``, ``max``, ``keep``. ``str(spec)`` and ``IndexSpec.parse`` round-trip.
"""

from __future__ import annotations

from dataclasses import dataclass

from indexnas.errors import UserError
from indexnas.names import did_you_mean

# Learned families, in the paper's table order; value = the string form's family token.
LEARNED_FAMILIES: tuple[str, ...] = (
    "holistic",  # HIN: one index map shared by all channels
    "o2o-modelwise",  # one O2O IndexNet shared by every stage of the model
    "o2o-shared",  # O2O, one IndexNet per stage shared by the channels of that stage
    "o2o-unshared",  # O2O, grouped convs: every channel has its own index function
    "m2o",  # M2O depthwise: every index slice sees all channels
)
# Fixed index functions that the same IP/IU machinery expresses (no parameters).
BASELINE_FAMILIES: tuple[str, ...] = (
    "max",  # max-pooling indices (SegNet pooling/unpooling)
    "hmi",  # holistic max index: argmax of the channel-wise max, shared by all channels
    "avg",  # uniform indices: average pooling / nearest upsampling
)
KEEP = "keep"  # leave the pair's original operators untouched
FAMILIES: tuple[str, ...] = (KEEP, *BASELINE_FAMILIES, *LEARNED_FAMILIES)

# Index normalisations of the paper's Table 4. Defaults: sigmoid for the decoder map,
# sigmoid then softmax over each region for the encoder map ("magnitude consistency").
NORMS: tuple[str, ...] = ("sigmoid", "softmax", "sigmoid_softmax")
DEFAULT_ENC_NORM = "sigmoid_softmax"
DEFAULT_DEC_NORM = "sigmoid"


@dataclass(frozen=True, order=True)
class IndexSpec:
    """What to put at one down/up pair: a family, its linearity, weak context, normalisations."""

    family: str
    nonlinear: bool = False
    context: bool = False
    enc_norm: str = DEFAULT_ENC_NORM
    dec_norm: str = DEFAULT_DEC_NORM

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise UserError(
                f"unknown IndexNet family {self.family!r}",
                f"{did_you_mean(self.family, FAMILIES)}use one of: {', '.join(FAMILIES)}",
            )
        if not self.learned and (self.nonlinear or self.context):
            raise UserError(
                f"{self.family!r} is a fixed index function: it has no nonlinear or context variant",
                f"use plain {self.family!r}, or a learned family ({', '.join(LEARNED_FAMILIES)})",
            )
        for side, norm in (("encoder", self.enc_norm), ("decoder", self.dec_norm)):
            if norm not in NORMS:
                raise UserError(
                    f"unknown {side} index normalisation {norm!r}", f"use one of: {', '.join(NORMS)}"
                )
        if not self.learned and (self.enc_norm, self.dec_norm) != (DEFAULT_ENC_NORM, DEFAULT_DEC_NORM):
            raise UserError(
                f"{self.family!r} has fixed indices: index normalisation does not apply",
                "drop the '@enc=...,dec=...' part",
            )

    @property
    def learned(self) -> bool:
        """True for the five IndexNet families (they have parameters)."""
        return self.family in LEARNED_FAMILIES

    @property
    def keep(self) -> bool:
        return self.family == KEEP

    @property
    def holistic(self) -> bool:
        """True when the index map has one channel and broadcasts over any decoder width."""
        return self.family in ("holistic", "hmi", "avg")

    @property
    def depthwise(self) -> bool:
        """True when the index map has the encoder feature's channels (decoder must match)."""
        return self.family in ("max", "m2o", "o2o-unshared", "o2o-shared", "o2o-modelwise")

    @property
    def modelwise(self) -> bool:
        """True when one IndexNet module is shared by every rewritten pair of the model."""
        return self.family == "o2o-modelwise"

    def first_conv(self, rate: int = 2) -> tuple[int, int]:
        """(kernel, padding) of a learned family's first conv, whose stride is the rate k: the k x k region,
        or with weak context a (k + 2 * (k // 2))-wide window padded by k // 2 (4x4 padded by 1 at k = 2)."""
        return (rate + 2 * (rate // 2), rate // 2) if self.context else (rate, 0)

    def __str__(self) -> str:
        text = self.family + ("-nl" if self.nonlinear else "") + ("-c" if self.context else "")
        if (self.enc_norm, self.dec_norm) != (DEFAULT_ENC_NORM, DEFAULT_DEC_NORM):
            text += f"@enc={self.enc_norm},dec={self.dec_norm}"
        return text

    @classmethod
    def parse(cls, text: str | IndexSpec) -> IndexSpec:
        """Parse the string form; an invalid string raises UserError listing the valid forms."""
        if isinstance(text, IndexSpec):
            return text
        if not isinstance(text, str):
            raise UserError(f"an IndexNet choice must be a string, got {type(text).__name__}", _forms_hint())
        raw = text.strip().lower()
        body, _, norms = raw.partition("@")
        family, nonlinear, context = body, False, False
        if family.endswith("-c"):
            family, context = family[:-2], True
        if family.endswith("-nl"):
            family, nonlinear = family[:-3], True
        if family not in FAMILIES:
            hint = did_you_mean(raw, [str(spec) for spec in all_choices()])
            raise UserError(f"invalid IndexNet choice {text!r}", hint + _forms_hint())
        enc_norm, dec_norm = DEFAULT_ENC_NORM, DEFAULT_DEC_NORM
        if norms:
            for item in norms.split(","):
                key, _, value = item.partition("=")
                if key == "enc":
                    enc_norm = value
                elif key == "dec":
                    dec_norm = value
                else:
                    raise UserError(
                        f"invalid normalisation part {item!r} in {text!r}",
                        f"write it as '@enc=NORM,dec=NORM' with NORM one of: {', '.join(NORMS)}",
                    )
        return cls(family, nonlinear, context, enc_norm, dec_norm)


def _forms_hint() -> str:
    learned = ", ".join(f"{f}[-nl][-c]" for f in LEARNED_FAMILIES)
    return (
        f"valid forms: {KEEP}, {', '.join(BASELINE_FAMILIES)}, {learned}; "
        f"optionally followed by '@enc=NORM,dec=NORM' (NORM: {', '.join(NORMS)}), e.g. 'm2o-nl-c'"
    )


def paper_variants() -> list[IndexSpec]:
    """The paper's 15 uniform configurations, in its table order (family x {L, NL, NL+C})."""
    return [
        IndexSpec(family, nonlinear, context)
        for family in LEARNED_FAMILIES
        for nonlinear, context in ((False, False), (True, False), (True, True))
    ]


def all_choices() -> list[IndexSpec]:
    """Every choice with default normalisation: keep, the baselines, and the 20 learned variants."""
    learned = [
        IndexSpec(family, nonlinear, context)
        for family in LEARNED_FAMILIES
        for nonlinear in (False, True)
        for context in (False, True)
    ]
    return [IndexSpec(KEEP), *(IndexSpec(f) for f in BASELINE_FAMILIES), *learned]


def summarise_choices(choices: list[str] | list[IndexSpec]) -> str:
    """A short form of a set of choices: "all 24", else e.g. "keep max hmi avg holistic[-nl][-c] (8)"
    (a learned family with all four variants written once), for tables that list them per pair."""
    present = {str(IndexSpec.parse(c)) for c in choices}
    if not present:
        return "none"
    every = [str(c) for c in all_choices()]
    if present == set(every):
        return f"all {len(every)}"
    parts: list[str] = []
    for family in FAMILIES:
        variants = [c for c in every if IndexSpec.parse(c).family == family]
        if family in LEARNED_FAMILIES and set(variants) <= present:
            parts.append(f"{family}[-nl][-c]")
        else:
            parts += [c for c in variants if c in present]
    parts += sorted(present - set(every))  # non-default normalisations
    return f"{' '.join(parts)} ({len(present)})"
