-- 0007_skills_from_configuration: skills live in the configuration only (`acd.skills`, agents'
-- `skills`), which is what the ACD routes by. The `skills` and `agent_skills` tables of 0001 were
-- never read by routing, so a skill created there did nothing; GET /api/v1/skills now lists the
-- configured skills and the tables go.

DROP TABLE agent_skills;
DROP TABLE skills;
