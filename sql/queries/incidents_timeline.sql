-- One incident's lifecycle rows, in order.
SELECT at, action, by, note
FROM incidents
WHERE incident_id = {incident:String}
ORDER BY at, action
