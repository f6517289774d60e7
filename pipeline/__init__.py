"""complyray: fine-tune, evaluate and serve LLM detectors of regulatory violations, on Ray.

The library is one module per stage; importing it has no side effects (Ray workers re-import it).
"""

__version__ = "0.1.0"
