import os


def release() -> str:
    return os.uname().release
