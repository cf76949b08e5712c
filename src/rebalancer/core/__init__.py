"""The pure decision core: no I/O, no clock reads, no environment, standard library only."""
