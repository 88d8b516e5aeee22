"""The start of a child-process script that runs the real worker entry point (`infimmr_core.worker.main`) and stops it
where it would open the store: by then the stage's process settings (threads) are in place, and nothing is computed."""

STOPPED_AT_STORE = """
import json, os, sys
import infimmr_core.worker as worker

class Stop(Exception):
    pass

def stop(config):
    raise Stop

worker.store_from_config = stop
"""
