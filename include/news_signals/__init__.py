"""news-signals: keep a multi-head news classifier fresh in production.

All logic lives here so it is importable and testable without Airflow; the DAG files
under ``dags/`` only wire these functions together.
"""

__version__ = "0.1.0"
