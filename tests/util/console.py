#!/usr/bin/env python3
"""A far serial console for tests: PROGRAM runs with TTY as its controlling
terminal, in cooked mode as a getty leaves it (`stty sane`).

usage: console.py TTY SAVE PROGRAM [ARGS...]   (SAVE receives `stty -g` once sane)
"""
import fcntl
import os
import sys
import termios

tty, save, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
os.setsid()
fd = os.open(tty, os.O_RDWR)  # the first tty a session leader opens becomes its controlling tty
import fcntl
fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
for i in (0, 1, 2):
    os.dup2(fd, i)
if fd > 2:
    os.close(fd)
# What a getty leaves: canonical input, echo, signals, CR/NL mapping, XON/XOFF.
os.spawnvp(os.P_WAIT, "stty", ["stty", "sane"])
with open(save, "w") as f:
    os.dup2(f.fileno(), 1)
    os.spawnvp(os.P_WAIT, "stty", ["stty", "-g"])
os.dup2(0, 1)
os.execvp(argv[0], argv)
