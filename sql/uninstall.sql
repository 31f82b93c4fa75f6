-- Remove everything pgretrieval installed: its schema and, if pgretrieval created it and nothing else uses
-- it, the vector extension. Used by `alembic downgrade base` and `pgretrieval migrate --uninstall`.
DO $$
DECLARE
    v_created_vector boolean := false;
BEGIN
    IF to_regclass('pgretrieval.schema_steps') IS NOT NULL THEN
        SELECT EXISTS (SELECT 1 FROM pgretrieval.schema_steps WHERE step = 'created extension vector')
          INTO v_created_vector;
    END IF;
    DROP SCHEMA IF EXISTS pgretrieval CASCADE;
    IF v_created_vector THEN
        BEGIN
            DROP EXTENSION IF EXISTS vector RESTRICT;
        EXCEPTION WHEN dependent_objects_still_exist THEN
            RAISE NOTICE 'kept the vector extension: other objects in this database use it';
        END;
    END IF;
END
$$;
