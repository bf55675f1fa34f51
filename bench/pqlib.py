"""libpq through ctypes, for the benchmark helpers (no driver needed)."""
import ctypes
import ctypes.util
import sys

pq = ctypes.CDLL(ctypes.util.find_library("pq"))
pq.PQconnectdb.restype = ctypes.c_void_p
pq.PQconnectdb.argtypes = [ctypes.c_char_p]
pq.PQstatus.argtypes = [ctypes.c_void_p]
pq.PQerrorMessage.restype = ctypes.c_char_p
pq.PQerrorMessage.argtypes = [ctypes.c_void_p]
pq.PQexec.restype = ctypes.c_void_p
pq.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
pq.PQsendQuery.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
pq.PQresultStatus.argtypes = [ctypes.c_void_p]
pq.PQresultErrorField.restype = ctypes.c_char_p
pq.PQresultErrorField.argtypes = [ctypes.c_void_p, ctypes.c_int]
pq.PQgetResult.restype = ctypes.c_void_p
pq.PQgetResult.argtypes = [ctypes.c_void_p]
pq.PQisBusy.argtypes = [ctypes.c_void_p]
pq.PQclear.argtypes = [ctypes.c_void_p]
pq.PQsocket.argtypes = [ctypes.c_void_p]
pq.PQconsumeInput.argtypes = [ctypes.c_void_p]
pq.PQfinish.argtypes = [ctypes.c_void_p]

CONNECTION_OK = 0
PGRES_TUPLES_OK = 2
PG_DIAG_SQLSTATE = ord("C")


def connect_idle(conninfo):
    """A connection that has run SELECT 1 and is idle; exits on failure."""
    c = pq.PQconnectdb(conninfo.encode())
    if pq.PQstatus(c) != CONNECTION_OK:
        sys.exit("connection failed: " + pq.PQerrorMessage(c).decode())
    r = pq.PQexec(c, b"SELECT 1")
    if pq.PQresultStatus(r) != PGRES_TUPLES_OK:
        sys.exit("SELECT 1 failed: " + pq.PQerrorMessage(c).decode())
    pq.PQclear(r)
    return c
