"""What a recurrent cell is: a definition (data plus two pointwise functions) and the registry of them.

A cell is written once, in its own file, as the lecture writes it. The time-loop driver (driver.py)
runs any definition on every backend: the step-at-a-time reference, the NumPy sweep and the
compiled Numba sweep all call the same `forward` and `backward`.

Shapes: D = input features, H = hidden units, G = gates (len(definition.gates)).
Pre-activations of gate g: from the input  a_x[g] = (x W_ih^T + b_ih)[g*H:(g+1)*H]
                           from the state  a_h[g] = (h W_hh^T + b_hh)[g*H:(g+1)*H]   ("dense")
                                                    u[g*H:(g+1)*H] * h + b_hh[...]     ("diagonal")
where h is the state's first variable. The two functions are pointwise: each argument is a tuple
whose entries are all (B, H) arrays (the NumPy sweep and the reference) or all scalars (one unit of
one sequence, inside the compiled loop), so write them with +, -, *, / and the activations of
rnnlab.nn.functional (sigmoid, tanh, relu, d*_from_output), which work on both.

    forward(a_x, a_h, state) -> new_state, saved
        a_x, a_h: G pre-activations each; state, new_state: one entry per state variable;
        saved: the activations backward needs, one entry per name in `saved`.
    backward(saved, state, new_state, d_new) -> d_ax, d_ah, d_state, d_new_all
        d_new: the gradient reaching each new state variable from the output and later steps;
        d_ax, d_ah: the gradients of a_x and a_h (G each; they differ only where the cell uses a_h
        other than through a_x + a_h, e.g. the GRU's r * (W_hn h + b_hn): set `h_side_apart`);
        d_state: the gradient of the previous state inside this step, apart from the path through
        a_h (the driver adds that one: d_ah W_hh, or d_ah * u); d_new_all: the gradient of each new
        state variable counting every path through this step too (what gradient-flow diagnostics
        record as dL/dh_t, dL/dc_t).

A cell may declare parameters of its own beside the standard four (`parameters`, e.g. the peephole
weights of docs/cells.md): each one value per hidden unit, shape (H,). They are handed to both
functions as one more argument, a tuple `p` with one entry per such parameter, in their order (an
(H,) array, or one unit's scalar in the compiled loop), and backward returns their gradients last:

    forward(a_x, a_h, state, p) -> new_state, saved
    backward(saved, state, new_state, d_new, p) -> d_ax, d_ah, d_state, d_new_all, d_p

where d_p holds, per parameter, the gradient of this step for each row and unit (B, H) (or a
scalar); the driver sums it over the batch and the steps.
"""
from __future__ import annotations

import importlib.util
import inspect
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ...settings import settings

RECURRENCES = ("dense", "diagonal")
STANDARD = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")  # every cell's; any other parameter is (H,)


@dataclass(frozen=True)
class Param:
    """One parameter: its PyTorch-style name, shape as a function of (D, H, G), and how init="orthogonal"
    fills it ("glorot" uniform, "orthogonal" blocks per gate, "zeros", "ones", "unit_uniform" U(0, 1)). init="uniform" fills every
    parameter with PyTorch's U(-1/sqrt(H), 1/sqrt(H))."""

    name: str
    shape: Callable[[int, int, int], tuple]
    init: str


def _gates_by_hidden(D, H, G):
    return (G * H, H)


def _gates_by_input(D, H, G):
    return (G * H, D)


def _gates(D, H, G):
    return (G * H,)


def standard_parameters(recurrence: str = "dense") -> tuple[Param, ...]:
    """weight_ih (G*H, D), weight_hh (G*H, H) or, diagonal, (G*H,), bias_ih (G*H,), bias_hh (G*H,).
    The shapes are module-level functions, not lambdas, so layers pickle (joblib, Dask, copy)."""
    if recurrence == "dense":
        hh = Param("weight_hh", _gates_by_hidden, "orthogonal")
    else:
        hh = Param("weight_hh", _gates, "ones")
    return (Param("weight_ih", _gates_by_input, "glorot"), hh,
            Param("bias_ih", _gates, "zeros"), Param("bias_hh", _gates, "zeros"))


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one definition, one set of compiled loops
class CellDefinition:
    """Everything the driver, the layers, the CLI and the diagnostics know about one kind of cell."""

    name: str
    gates: tuple[str, ...]                 # one name per gate, in the row order of weight_ih
    state_names: tuple[str, ...]           # ("h",) or ("h", "c"); the first is the output and the recurrence's input
    saved: tuple[str, ...]                 # names of what forward keeps for backward, in its order
    forward: Callable
    backward: Callable
    recurrence: str = "dense"              # "dense": h W_hh^T; "diagonal": u * h with u (G*H,)
    h_side_apart: bool = False             # backward's d_ah differs from d_ax (see the module docstring)
    parameters: tuple[Param, ...] = None   # default: standard_parameters(recurrence)
    gate_bias: dict = field(default_factory=dict)  # init="orthogonal": {gate name: bias_ih value}
    label: str = ""                        # short name for titles, e.g. "LSTM" (default: the name in capitals)
    doc: str = ""                          # one line for help texts

    def __post_init__(self):
        problems = []
        if not isinstance(self.name, str) or not self.name.isidentifier():
            problems.append(f"name must be an identifier; got {self.name!r}")
        if not self.gates or len(set(self.gates)) != len(self.gates):
            problems.append(f"gates must be distinct names, at least one; got {self.gates!r}")
        if not self.state_names or self.state_names[0] != "h" or len(set(self.state_names)) != len(self.state_names):
            problems.append(f"state_names must start with 'h' and be distinct; got {self.state_names!r}")
        if self.recurrence not in RECURRENCES:
            problems.append(f"recurrence must be one of {RECURRENCES}; got {self.recurrence!r}")
        if not callable(self.forward) or not callable(self.backward):
            problems.append("forward and backward must be functions")
        if self.parameters is not None:
            for p in self.parameters:
                if p.name not in STANDARD and tuple(p.shape(3, 5, len(self.gates or ()))) != (5,):
                    problems.append(f"parameter {p.name!r} is not one of {STANDARD}, so it must have one value per "
                                    f"hidden unit, shape (H,); got {tuple(p.shape(3, 5, len(self.gates or ())))} "
                                    f"at D = 3, H = 5")
        unknown = set(self.gate_bias) - set(self.gates)
        if unknown:
            problems.append(f"gate_bias names unknown gates {sorted(unknown)}")
        if problems:
            raise ValueError(f"cell definition {self.name!r}: " + "; ".join(problems))
        if not self.label:
            object.__setattr__(self, "label", self.name.upper())
        if self.parameters is None:
            object.__setattr__(self, "parameters", standard_parameters(self.recurrence))

    def __reduce_ex__(self, protocol):
        """Pickled (and deep-copied) by name when registered, so a worker's layer runs the registered
        definition and its compiled loops; by value otherwise."""
        if settings.cells.cells.get(self.name) is self:
            return (get_cell, (self.name,))
        return super().__reduce_ex__(protocol)

    @property
    def G(self) -> int:
        return len(self.gates)

    @property
    def extra_parameters(self) -> tuple[str, ...]:
        """The names of the cell's own parameters beyond the standard four, each (H,), in order."""
        return tuple(p.name for p in self.parameters if p.name not in STANDARD)

    @property
    def origin(self) -> str:
        """Where the cell was defined: "rnnlab" for a built-in one, else the file of its forward."""
        try:
            path = Path(inspect.getsourcefile(self.forward)).resolve()
        except (TypeError, OSError):
            return "<unknown>"
        return "rnnlab" if Path(__file__).resolve().parents[2] in path.parents else str(path)

    def shapes(self, D: int, H: int) -> dict:
        """{parameter name: shape} for input size D and hidden size H."""
        return {p.name: tuple(p.shape(D, H, self.G)) for p in self.parameters}


class CellRegistry:
    """The cells rnnlab knows by name, in one object: `rnnlab.settings.cells`. The built-in cells are
    registered when rnnlab.nn.cells is imported, a user's by register_cell or by a file named in
    RNNLAB_CELLS (imported once, when a name is first looked up), so the CLI and the models see them too.

        cells             {name: CellDefinition}, built-in ones first
        files_loaded      the RNNLAB_CELLS files already imported (resolved paths)
    """

    def __init__(self):
        self.cells: dict[str, CellDefinition] = {}
        self.files_loaded: set[str] = set()

    def register(self, definition: CellDefinition, replace: bool = False) -> CellDefinition:
        """Make a cell known by its name to rnnlab.Recurrent, the models, the CLI and the diagnostics."""
        if not isinstance(definition, CellDefinition):
            raise TypeError(f"register_cell takes a CellDefinition; got {type(definition).__name__}")
        names = (*definition.gates, *definition.state_names, *definition.saved,
                 *(p.name for p in definition.parameters))
        bad = [n for n in names if not (isinstance(n, str) and n.isidentifier())]
        if bad:  # names reach Python code, files and HTML pages: identifiers only
            raise ValueError(f"cell {definition.name!r}: gate, state, saved and parameter names must be Python "
                             f"identifiers; got {', '.join(map(repr, bad))}")
        known = self.cells.get(definition.name)
        if known is not None and not replace and known is not definition:
            raise ValueError(f"a cell named {definition.name!r} is already registered (pass replace=True)")
        from ..driver import check_step  # the driver runs cells; a definition only describes one

        check_step(definition)  # a cell that returns the wrong values fails here, in one line
        self.cells[definition.name] = definition
        return definition

    def unregister(self, name: str) -> None:
        """Forget a cell registered by the user (rnnlab's own cells stay)."""
        definition = self.cells.get(name)
        if definition is None:
            raise ValueError(f"no cell named {name!r} is registered")
        if definition.origin == "rnnlab":
            raise ValueError(f"{name!r} is one of rnnlab's own cells and stays registered")
        del self.cells[name]

    def get(self, name) -> CellDefinition:
        """The definition registered under `name` (a definition passes through), or one clear error."""
        if isinstance(name, CellDefinition):
            return name
        self.load_files()
        if name not in self.cells:
            raise ValueError(f"unknown cell {name!r}; registered: {', '.join(self.cells)} (a cell of your own is "
                             f"loaded from its file by RNNLAB_CELLS=path/to/cell.py)")
        return self.cells[name]

    def names(self) -> tuple[str, ...]:
        """The names of every registered cell, built-in ones first."""
        self.load_files()
        return tuple(self.cells)

    def __contains__(self, name) -> bool:
        return name in self.names()

    def __repr__(self) -> str:
        return f"CellRegistry({', '.join(self.names())})"

    def load_files(self) -> None:
        """Import the cell files named in RNNLAB_CELLS (paths separated by os.pathsep), once each: each
        registers its cells, so the CLI (rnnlab train --model NAME, ...) sees them too."""
        for entry in filter(None, os.environ.get("RNNLAB_CELLS", "").split(os.pathsep)):
            path = Path(entry).expanduser().resolve()
            if str(path) in self.files_loaded:
                continue
            self.files_loaded.add(str(path))
            if not path.is_file():
                raise ValueError(f"RNNLAB_CELLS names {entry!r}, which is not a file")
            spec = importlib.util.spec_from_file_location(f"rnnlab_user_cells_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except Exception as error:  # the user's code: say which file, in one line
                raise ValueError(f"RNNLAB_CELLS: {entry} failed to load: {type(error).__name__}: {error}") from error


def register_cell(definition: CellDefinition, replace: bool = False) -> CellDefinition:
    """Make a cell known by its name (rnnlab.settings.cells.register; see CellRegistry)."""
    return settings.cells.register(definition, replace)


def get_cell(name) -> CellDefinition:
    """The definition registered under `name`, or one clear error (rnnlab.settings.cells.get)."""
    return settings.cells.get(name)


def cell_names() -> tuple[str, ...]:
    """Every registered cell's name, built-in ones first (rnnlab.settings.cells.names())."""
    return settings.cells.names()


def load_cell_files() -> None:
    """Import the files named in RNNLAB_CELLS, once each (rnnlab.settings.cells.load_files())."""
    settings.cells.load_files()


class RegisteredNames(Sequence):
    """The registered cell names as a live, read-only sequence (for `in`, argparse choices, joins):
    a cell registered later is in it too."""

    def __getitem__(self, index):
        return cell_names()[index]

    def __len__(self) -> int:
        return len(cell_names())

    def __add__(self, other) -> tuple:
        return cell_names() + tuple(other)

    def __radd__(self, other) -> tuple:
        return tuple(other) + cell_names()

    def __repr__(self) -> str:
        return repr(cell_names())
