-- Text to lexemes, for documents and queries alike, from the collection's text configuration.
-- One function so that ingestion (from SQL or Python) and lexical_search always agree.

-- Is this a text configuration pgretrieval can use? Any Postgres text search configuration that resolves
-- here (built-in names like english or simple; custom ones schema-qualified, e.g. myschema.myconfig).
CREATE OR REPLACE FUNCTION pgretrieval.is_valid_text_config(p_config text)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
BEGIN
    IF p_config IS NULL OR p_config = '' THEN
        RETURN false;
    END IF;
    PERFORM p_config::regconfig;
    RETURN true;
EXCEPTION WHEN undefined_object OR invalid_name OR syntax_error OR invalid_schema_name THEN
    RETURN false;
END
$$;

CREATE OR REPLACE FUNCTION pgretrieval.text_to_tsvector(p_config text, p_body text)
RETURNS tsvector
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
BEGIN
    IF NOT pgretrieval.is_valid_text_config(p_config) THEN
        RAISE EXCEPTION 'unknown text search configuration "%"', p_config
            USING ERRCODE = 'PR002',
                  HINT = 'Use a Postgres text search configuration such as english or simple (SELECT cfgname FROM pg_ts_config).';
    END IF;
    RETURN to_tsvector(p_config::regconfig, coalesce(p_body, ''));
END
$$;
