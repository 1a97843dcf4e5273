"""Environment probes: kernelspecs (EN200–EN204) and the interpreters behind them (EN210–EN212).

Each probe is a function that returns findings; ``nbmedic kernels`` and ``nbmedic doctor`` call them.
"""
