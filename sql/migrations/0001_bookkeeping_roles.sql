-- 0001: bookkeeping and roles.
-- The migrations runner creates `schema_migrations` itself (it must exist before anything is
-- recorded); this file sets up who may do what. Writers (the workers, `db migrate`) use the
-- deployment's admin/writer credentials; analysts get a role with SELECT only.

-- @optional access_control
CREATE ROLE IF NOT EXISTS auditstream_analyst;

-- @optional access_control
GRANT SELECT ON {{database}}.* TO auditstream_analyst;
