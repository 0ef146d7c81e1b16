"""morphogen: self-organising cellular automata, rebuilt from seeds."""

__version__ = "0.1.0"
