"""Daily / weekly / monthly KPI reports computed in SQL from the ``calls`` and
``agent_state_changes`` tables, bucketed by calendar periods of the site's time zone."""
