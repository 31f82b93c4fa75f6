-- Text to lexemes, for documents and queries alike, from the collection's text configuration.
-- One function so that ingestion (from SQL or Python) and lexical_search always agree.
--
-- Besides any Postgres text search configuration (english, simple, german, myschema.myconfig, ...),
-- pgretrieval has its own configurations for Chinese, Japanese and Korean, in plain SQL (no zhparser,
-- pg_jieba or pg_bigm; any Postgres 14+ with a UTF8 database):
--
--   cjk         CJK runs -> character unigrams + overlapping bigrams; other words -> english stemming + stop words
--   cjk_simple  the same, other words only lowercased (no stemming, no stop words)
--   cjk_bigram  CJK runs -> bigrams only (a run of one character -> that character), as Lucene's CJKAnalyzer;
--               other words as in cjk. Smaller index, but a one-character query cannot match inside longer runs
--   auto        CJK runs as in cjk; all text between them through Postgres' english configuration (its parser:
--               hyphenated words, URLs, e-mails, decimals), so text without CJK gets exactly what an
--               english collection gets
--
-- How text becomes lexemes in the cjk* configurations (pgretrieval/cjk.py does exactly the same in Python;
-- tests/integration/test_cjk_parity.py proves it):
-- 1. NFKC (full-width Latin and digits -> ASCII, half-width katakana -> full-width, compatibility ideographs
--    -> unified ones, circled digits -> digits, ...); invisible format characters (soft hyphen, ZWJ/ZWNJ, word
--    joiner, BOM, variation selectors, tags) are removed; then lowercase (Unicode simple case mapping:
--    COLLATE pg_c_utf8 on Postgres 17+, the database's collation before).
-- 2. The text is cut into CJK runs (maximal sequences of Han, Hiragana, Katakana and Hangul characters, see
--    _cjk_pattern) and words (maximal sequences of characters that are neither CJK nor separators:
--    whitespace, controls, ASCII and CJK punctuation, symbols, emoji). Everything else is dropped.
-- 3. A CJK run of n characters takes n positions: character i at position i, and the bigram (i, i+1) stacked
--    on the same position i (Lucene's outputUnigrams layout), so consecutive bigrams are adjacent and phrase
--    queries work. A word takes one position (also a stop word, as in Postgres); its lexeme is
--    ts_lexize('english_stem', word) for cjk/cjk_bigram, the word itself for cjk_simple.
--    cjk_bigram: a run of n >= 2 characters takes n - 1 positions (one per bigram).
-- 4. As everywhere in Postgres: positions above 16383 become 16383, a lexeme keeps at most 256 positions (so
--    BM25 tf <= 256), a word of 2047 bytes or more is skipped (it still takes its position).
--
-- Traditional and Simplified Chinese are not converted: each is indexed as written, so a Simplified query
-- matches a Traditional document only through characters the two share (e.g. 中国 vs 中國 share only 中;
-- 台北 matches 台北, not 臺北). Use one script per collection, or convert before ingesting.

-- The regular expression classes, shared (character for character) with pgretrieval/cjk.py.
-- CJK: Hangul Jamo, CJK iteration/closing marks and Hangzhou numerals, Hiragana, Katakana (without the
-- middle dot and the double hyphen), Hangul compatibility Jamo, Katakana extensions, CJK Unified Ideographs
-- (with extension A), Hangul syllables and Jamo extensions, compatibility ideographs, half-width forms,
-- Kana supplements, and planes 2 and 3 (ideograph extensions B to I).
CREATE OR REPLACE FUNCTION pgretrieval._cjk_chars()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgretrieval, public, extensions
RETURN '\u1100-\u11ff\u3005-\u3007\u3021-\u3029\u3031-\u3035\u3038-\u303c\u3041-\u3096\u3099-\u309a'
       '\u309d-\u309f\u30a1-\u30fa\u30fc-\u30ff\u3131-\u318e\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff'
       '\ua960-\ua97f\uac00-\ud7a3\ud7b0-\ud7ff\uf900-\ufaff\uff66-\uff9f\uffa0-\uffdc'
       '\U0001aff0-\U0001b16f\U00020000-\U0003fffd';

-- Separators: controls, whitespace, ASCII and Latin-1 punctuation and symbols, the common punctuation of
-- other scripts, general punctuation, currency, arrows, mathematical and technical symbols, box drawing,
-- dingbats, CJK punctuation and symbols, CJK strokes and radicals, vertical and small forms, full-width
-- punctuation, specials, emoji and pictographs.
CREATE OR REPLACE FUNCTION pgretrieval._cjk_separators()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgretrieval, public, extensions
RETURN '\u0001-\u002f\u003a-\u0040\u005b-\u0060\u007b-\u00bf\u00d7\u00f7'
       '\u055a-\u055f\u0589-\u058a\u05be\u05c0\u05c3\u05c6\u05f3-\u05f4\u0600-\u060f\u061b-\u061f'
       '\u066a-\u066d\u06d4\u0964-\u0965\u0970\u0e4f\u0e5a-\u0e5b\u104a-\u104f\u10fb\u1360-\u1368'
       '\u166d-\u166e\u1680\u17d4-\u17da\u1800-\u180a\u180e'
       '\u2000-\u206f\u20a0-\u20cf\u2190-\u245f\u2500-\u2bff\u2e00-\u2fff'
       '\u3000-\u3004\u3008-\u3020\u302a-\u3030\u3036-\u3037\u303d-\u303f\u309b-\u309c\u30a0\u30fb'
       '\u3190-\u319f\u31c0-\u31ef\u3200-\u33ff\u4dc0-\u4dff\ufd3e-\ufd3f\ufe10-\ufe1f\ufe30-\ufe6f'
       '\uff00-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65\uffe0-\uffff\U0001f000-\U0001fbff';

-- Invisible format characters removed before tokenizing (so they never split a word or a run).
CREATE OR REPLACE FUNCTION pgretrieval._cjk_ignored()
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgretrieval, public, extensions
RETURN '\u00ad\u034f\u180b-\u180d\u180f\u200c\u200d\u2060-\u2064\ufe00-\ufe0f\ufeff\U000e0000-\U000e0fff';

-- Is this a text configuration pgretrieval can use? Its own (cjk, cjk_simple, cjk_bigram, auto: they need a
-- UTF8 database) or any Postgres text search configuration that resolves here (built-in names like english or
-- simple; custom ones schema-qualified, e.g. myschema.myconfig).
CREATE OR REPLACE FUNCTION pgretrieval.is_valid_text_config(p_config text)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
BEGIN
    IF p_config IS NULL OR p_config = '' THEN
        RETURN false;
    END IF;
    IF p_config IN ('cjk', 'cjk_simple', 'cjk_bigram', 'auto') THEN
        RETURN getdatabaseencoding() = 'UTF8';
    END IF;
    PERFORM p_config::regconfig;
    RETURN true;
EXCEPTION WHEN undefined_object OR invalid_name OR syntax_error OR invalid_schema_name THEN
    RETURN false;
END
$$;

-- NFKC, invisible characters removed, lowercase: step 1 of the cjk configurations (see the top of the file).
CREATE OR REPLACE FUNCTION pgretrieval._cjk_normalize(p_body text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE STRICT
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v text := regexp_replace(normalize(p_body, NFKC), '[' || pgretrieval._cjk_ignored() || ']', '', 'g');
BEGIN
    IF current_setting('server_version_num')::integer >= 170000 THEN
        RETURN lower(v COLLATE pg_c_utf8);  -- Unicode simple case mapping whatever the database locale
    END IF;
    RETURN lower(v);
END
$$;

-- The cjk, cjk_simple and cjk_bigram configurations (steps 2 to 4 at the top of the file), set-based: one
-- regular expression pass over the text, then per CJK run an unnest of its characters zipped with themselves
-- shifted by one (bigrams in linear time, also for very long runs), and one tsvector built from a literal.
-- The literal lists every occurrence (tsvectorin merges them). Past 300,000 bytes of text that literal could
-- exceed tsvectorin's 1 MB of lexemes, so long texts are grouped per lexeme first (slower, same result).
CREATE OR REPLACE FUNCTION pgretrieval._cjk_tsvector(p_config text, p_body text, p_grouped boolean DEFAULT NULL)
RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_text text := pgretrieval._cjk_normalize(coalesce(p_body, ''));
    v_unigrams boolean := p_config <> 'cjk_bigram';
    v_stem boolean := p_config <> 'cjk_simple';
    v_cjk text := pgretrieval._cjk_chars();
    v_pattern text := '([' || v_cjk || ']+)|([^' || v_cjk || pgretrieval._cjk_separators() || ']+)';
    v_literal text;
BEGIN
    IF NOT coalesce(p_grouped, octet_length(v_text) > 300000) THEN
        -- Lexemes never hold a quote or a backslash here (both are separators), so they need no escaping.
        SELECT string_agg(
                   CASE WHEN b.run IS NULL THEN
                       (SELECT string_agg('''' || l || ''':' || b.upto, ' ')
                          FROM unnest(CASE WHEN v_stem THEN ts_lexize('english_stem', b.word)
                                           ELSE ARRAY[b.word] END) AS l)
                   ELSE
                       (SELECT string_agg(
                                   CASE WHEN c.y IS NULL THEN
                                            CASE WHEN v_unigrams OR c.i = 1 THEN '''' || c.x || ''':' || (b.base + c.i) END
                                        WHEN v_unigrams THEN
                                            '''' || c.x || ''':' || (b.base + c.i) || ' ''' || c.x || c.y || ''':'
                                            || (b.base + c.i)
                                        ELSE '''' || c.x || c.y || ''':' || (b.base + c.i) END, ' ')
                          FROM unnest(string_to_array(b.run, NULL), string_to_array(substr(b.run, 2), NULL))
                               WITH ORDINALITY AS c(x, y, i))
                   END, ' ')
          INTO v_literal
          FROM (SELECT m.run, m.word, sum(m.width) OVER (ORDER BY m.o) AS upto,
                       sum(m.width) OVER (ORDER BY m.o) - m.width AS base
                  FROM (SELECT r.o, r.m[1] AS run, r.m[2] AS word,
                               CASE WHEN r.m[1] IS NULL THEN 1
                                    WHEN v_unigrams THEN length(r.m[1])
                                    ELSE greatest(length(r.m[1]) - 1, 1) END AS width
                          FROM regexp_matches(v_text, v_pattern, 'g') WITH ORDINALITY AS r(m, o)) m) b
         WHERE b.run IS NOT NULL OR octet_length(b.word) < 2047;
        RETURN coalesce(v_literal::tsvector, ''::tsvector);
    END IF;

    WITH m AS (
        SELECT r.o, r.m[1] AS run, r.m[2] AS word,
               CASE WHEN r.m[1] IS NULL THEN 1
                    WHEN v_unigrams THEN length(r.m[1])
                    ELSE greatest(length(r.m[1]) - 1, 1) END AS width
          FROM regexp_matches(v_text, v_pattern, 'g') WITH ORDINALITY AS r(m, o)
    ), b AS (
        SELECT m.run, m.word, sum(m.width) OVER (ORDER BY m.o) - m.width AS base FROM m
    ), tokens AS (
        SELECT l.lexeme, b.base + 1 AS pos
          FROM b CROSS JOIN LATERAL unnest(CASE WHEN v_stem THEN ts_lexize('english_stem', b.word)
                                                 ELSE ARRAY[b.word] END) AS l(lexeme)
         WHERE b.word IS NOT NULL AND octet_length(b.word) < 2047
        UNION ALL
        SELECT t.lexeme, b.base + c.i
          FROM b CROSS JOIN LATERAL unnest(string_to_array(b.run, NULL), string_to_array(substr(b.run, 2), NULL))
                                    WITH ORDINALITY AS c(x, y, i)
                 CROSS JOIN LATERAL (VALUES (CASE WHEN v_unigrams OR c.y IS NULL AND c.i = 1 THEN c.x END),
                                            (c.x || c.y)) AS t(lexeme)
         WHERE b.run IS NOT NULL AND t.lexeme IS NOT NULL
    ), grouped AS (
        SELECT tokens.lexeme, string_agg(tokens.pos::text, ',') AS positions FROM tokens GROUP BY tokens.lexeme
    )
    SELECT string_agg('''' || g.lexeme || ''':' || g.positions, ' ') INTO v_literal FROM grouped g;
    IF v_literal IS NULL THEN
        RETURN ''::tsvector;
    END IF;
    BEGIN
        RETURN v_literal::tsvector;
    EXCEPTION WHEN program_limit_exceeded THEN
        RAISE EXCEPTION 'text too long for one tsvector (% characters give over 1 MB of distinct lexemes)',
            length(v_text)
            USING ERRCODE = 'PR002',
                  HINT = 'Split the document into chunks (pgretrieval.chunking keeps chunks far below this limit).';
    END;
END
$$;

-- The auto configuration: CJK runs as in cjk, every stretch of text between them through Postgres' english
-- configuration, positions shifted so that the whole text keeps its order. Text without CJK costs one
-- to_tsvector('english', ...) call. Long texts are grouped per lexeme first, as in _cjk_tsvector.
CREATE OR REPLACE FUNCTION pgretrieval._auto_tsvector(p_body text, p_grouped boolean DEFAULT NULL)
RETURNS tsvector
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_text text := pgretrieval._cjk_normalize(coalesce(p_body, ''));
    v_cjk text := pgretrieval._cjk_chars();
    v_pattern text := '([' || v_cjk || ']+)|([^' || v_cjk || ']+)';
    v_words text := '[^' || pgretrieval._cjk_separators() || ']';
    v_literal text;
BEGIN
    IF v_text !~ ('[' || v_cjk || ']') THEN
        RETURN to_tsvector('english'::regconfig, v_text);
    END IF;
    IF NOT coalesce(p_grouped, octet_length(v_text) > 300000) THEN
        SELECT string_agg(
                   CASE WHEN b.run IS NULL THEN
                       (SELECT string_agg('''' || replace(replace(u.lexeme, '\', '\\'), '''', '''''') || ''':'
                                          || (SELECT string_agg((b.base + p)::text, ',') FROM unnest(u.positions) p),
                                          ' ')
                          FROM unnest(b.tv) AS u)
                   ELSE
                       (SELECT string_agg('''' || c.x || ''':' || (b.base + c.i)
                                          || CASE WHEN c.y IS NOT NULL
                                                  THEN ' ''' || c.x || c.y || ''':' || (b.base + c.i) ELSE '' END,
                                          ' ')
                          FROM unnest(string_to_array(b.run, NULL), string_to_array(substr(b.run, 2), NULL))
                               WITH ORDINALITY AS c(x, y, i))
                   END, ' ')
          INTO v_literal
          FROM (SELECT w.run, w.tv, sum(w.width) OVER (ORDER BY w.o) - w.width AS base
                  FROM (SELECT m.o, m.run, m.tv,
                               CASE WHEN m.run IS NOT NULL THEN length(m.run)
                                    WHEN m.tv IS NULL THEN 0
                                    ELSE coalesce((SELECT max(p) FROM unnest(m.tv) AS u, unnest(u.positions) AS p), 0)
                               END AS width
                          FROM (SELECT r.o, r.m[1] AS run,
                                       CASE WHEN r.m[2] ~ v_words THEN to_tsvector('english'::regconfig, r.m[2]) END AS tv
                                  FROM regexp_matches(v_text, v_pattern, 'g') WITH ORDINALITY AS r(m, o)) m) w) b
         WHERE b.run IS NOT NULL OR b.tv IS NOT NULL;
        RETURN coalesce(v_literal::tsvector, ''::tsvector);
    END IF;

    WITH m AS (
        SELECT r.o, r.m[1] AS run,
               CASE WHEN r.m[2] ~ v_words THEN to_tsvector('english'::regconfig, r.m[2]) END AS tv
          FROM regexp_matches(v_text, v_pattern, 'g') WITH ORDINALITY AS r(m, o)
    ), w AS (
        SELECT m.o, m.run, m.tv,
               CASE WHEN m.run IS NOT NULL THEN length(m.run)
                    WHEN m.tv IS NULL THEN 0
                    ELSE coalesce((SELECT max(p) FROM unnest(m.tv) AS u, unnest(u.positions) AS p), 0) END AS width
          FROM m
    ), b AS (
        SELECT w.run, w.tv, sum(w.width) OVER (ORDER BY w.o) - w.width AS base FROM w
    ), tokens AS (
        SELECT u.lexeme, b.base + p AS pos
          FROM b CROSS JOIN LATERAL unnest(b.tv) AS u CROSS JOIN LATERAL unnest(u.positions) AS p
         WHERE b.tv IS NOT NULL
        UNION ALL
        SELECT t.lexeme, b.base + c.i
          FROM b CROSS JOIN LATERAL unnest(string_to_array(b.run, NULL), string_to_array(substr(b.run, 2), NULL))
                                    WITH ORDINALITY AS c(x, y, i)
                 CROSS JOIN LATERAL (VALUES (c.x), (c.x || c.y)) AS t(lexeme)
         WHERE b.run IS NOT NULL AND t.lexeme IS NOT NULL
    ), grouped AS (
        SELECT tokens.lexeme, string_agg(tokens.pos::text, ',') AS positions FROM tokens GROUP BY tokens.lexeme
    )
    SELECT string_agg('''' || replace(replace(g.lexeme, '\', '\\'), '''', '''''') || ''':' || g.positions, ' ')
      INTO v_literal FROM grouped g;
    IF v_literal IS NULL THEN
        RETURN ''::tsvector;
    END IF;
    BEGIN
        RETURN v_literal::tsvector;
    EXCEPTION WHEN program_limit_exceeded THEN
        RAISE EXCEPTION 'text too long for one tsvector (% characters give over 1 MB of distinct lexemes)',
            length(v_text)
            USING ERRCODE = 'PR002',
                  HINT = 'Split the document into chunks (pgretrieval.chunking keeps chunks far below this limit).';
    END;
END
$$;

CREATE OR REPLACE FUNCTION pgretrieval.text_to_tsvector(p_config text, p_body text)
RETURNS tsvector
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
BEGIN
    IF p_config IN ('cjk', 'cjk_simple', 'cjk_bigram', 'auto') THEN
        IF getdatabaseencoding() <> 'UTF8' THEN
            RAISE EXCEPTION 'the % text configuration needs a UTF8 database, this one is %',
                p_config, getdatabaseencoding()
                USING ERRCODE = 'PR002',
                      HINT = 'Create the database with ENCODING ''UTF8'', or use a Postgres configuration such as simple.';
        END IF;
        IF p_config = 'auto' THEN
            RETURN pgretrieval._auto_tsvector(p_body);
        END IF;
        RETURN pgretrieval._cjk_tsvector(p_config, p_body);
    END IF;
    IF NOT pgretrieval.is_valid_text_config(p_config) THEN
        RAISE EXCEPTION 'unknown text search configuration "%"', p_config
            USING ERRCODE = 'PR002',
                  HINT = 'Use cjk, cjk_simple, cjk_bigram, auto or a Postgres text search configuration such as english or simple (SELECT cfgname FROM pg_ts_config).';
    END IF;
    RETURN to_tsvector(p_config::regconfig, coalesce(p_body, ''));
END
$$;
