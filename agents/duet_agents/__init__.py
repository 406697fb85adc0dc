"""Duet's agents: pure decisions from observations, with no Kubernetes I/O.

The planner turns requirements into a platform design, the healer turns observations into
remediations, and the query agent turns questions into safe SQL. Nothing here imports the
operator, kopf or a Kubernetes client (`make lint` checks it).
"""
