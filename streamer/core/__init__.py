"""The pure streaming core: no I/O, no clocks, no asyncio; values in, frozen values out."""
