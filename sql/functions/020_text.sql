-- Text to lexemes from the collection's text configuration: pgretrieval.text_to_tsvector(config, body) for
-- documents (ingestion from SQL or Python, the chunks.tsv trigger), pgretrieval.query_to_tsvector(config, piece)
-- for queries (parse_query). The two differ only for the cjk, cjk_simple and auto configurations (below).
--
-- Besides any Postgres text search configuration (english, simple, german, myschema.myconfig, ...),
-- pgretrieval has its own configurations for Chinese, Japanese and Korean, in plain SQL (no zhparser,
-- pg_jieba or pg_bigm; any Postgres 14+ with a UTF8 database):
--
--   cjk           CJK runs -> overlapping character bigrams (Lucene's CJKBigramFilter: 东京都 -> 东京, 京都) plus
--                 the last character of each run; other words -> english stemming + stop words. Queries use
--                 the bigrams only; a one-character query run (京) matches that character anywhere in a
--                 run: it stands for every indexed lexeme that starts with it (bigrams 京X and the
--                 run-final 京; see _lexical_ranked), which gives exactly the tf and df a unigram index
--                 would. The default for Chinese, Japanese and Korean.
--   cjk_simple    the same, other words only lowercased (no stemming, no stop words)
--   cjk_bigram    Lucene's CJKAnalyzer: bigrams only (a run of one character -> that character), documents and
--                 queries alike. The smallest index (~10% fewer postings than cjk), but a one-character query
--                 matches only where the character stands alone
--   cjk_unigrams  every character and every bigram, documents and queries alike (what cjk first meant):
--                 slightly better ranking on some collections (drcd nDCG@10 +0.007), ~1.6x cjk's postings,
--                 so slower ingestion and search (the unigrams of common characters have long posting lists)
--   auto          CJK runs as in cjk; all text between them through Postgres' english configuration (its
--                 parser: hyphenated words, URLs, e-mails, decimals), so text without CJK gets exactly what
--                 an english collection gets
--
-- How text becomes lexemes in the cjk* configurations (pgretrieval/cjk.py does exactly the same in Python,
-- documents and queries; tests/integration/test_cjk_parity.py proves it):
-- 1. NFKC (full-width Latin and digits -> ASCII, half-width katakana -> full-width, compatibility ideographs
--    -> unified ones, circled digits -> digits, ...); invisible format characters (soft hyphen, ZWJ/ZWNJ, word
--    joiner, BOM, variation selectors, tags) are removed; then lowercase (Unicode simple case mapping:
--    COLLATE pg_c_utf8 on Postgres 17+, the database's collation before).
-- 2. The text is cut into CJK runs (maximal sequences of Han, Hiragana, Katakana and Hangul characters, see
--    _cjk_chars) and words (maximal sequences of characters that are neither CJK nor separators:
--    whitespace, controls, ASCII and CJK punctuation, symbols, emoji). Everything else is dropped.
-- 3. Character i of a CJK run takes position base + i, and the bigram (i, i+1) sits on position base + i, so
--    consecutive bigrams are adjacent and phrase queries work; the run takes n positions (cjk_bigram: n - 1,
--    Lucene's layout). What a run of n >= 2 characters yields besides its n - 1 bigrams:
--        cjk, cjk_simple, auto   documents: character n (at base + n); queries: nothing
--        cjk_unigrams            every character
--        cjk_bigram              nothing
--    A run of one character yields that character in every configuration. A word takes one position (also a
--    stop word, as in Postgres); its lexeme is ts_lexize('english_stem', word) for cjk/cjk_bigram/
--    cjk_unigrams, the word itself for cjk_simple.
-- 4. As everywhere in Postgres: positions above 16383 become 16383, a lexeme keeps at most 256 positions (so
--    BM25 tf <= 256), a word of 2047 bytes or more is skipped (it still takes its position).
--
-- Why bigrams plus the run-final character (cjk) and not every character (cjk_unigrams): postings per
-- document decide the cost of ingestion and of search. On xquad (the same 240 paragraphs in English and
-- Chinese) english makes 59 postings per paragraph, cjk 168, cjk_unigrams 261; benchmarks/results/
-- cjk_lexical.md has the side-by-side timings and the quality of each.
--
-- Traditional and Simplified Chinese are not converted: each is indexed as written, so a Simplified query
-- matches a Traditional document only through bigrams (or, as one-character queries, characters) the two
-- share: 中国 and 中國 share no bigram, the query 中 finds both; 台北 matches 台北, not 臺北. Use one script
-- per collection, or convert before ingesting.

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

-- Is this a text configuration pgretrieval can use? Its own (cjk, cjk_simple, cjk_bigram, cjk_unigrams, auto:
-- they need a UTF8 database) or any Postgres text search configuration that resolves here (built-in names like
-- english or simple; custom ones schema-qualified, e.g. myschema.myconfig).
CREATE OR REPLACE FUNCTION pgretrieval.is_valid_text_config(p_config text)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
BEGIN
    IF p_config IS NULL OR p_config = '' THEN
        RETURN false;
    END IF;
    IF p_config IN ('cjk', 'cjk_simple', 'cjk_bigram', 'cjk_unigrams', 'auto') THEN
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

-- The cjk, cjk_simple, cjk_bigram and cjk_unigrams configurations (steps 2 to 4 at the top of the file), for a
-- document (p_query false) or a query piece (p_query true). Set-based and flat: one regular expression pass
-- cuts runs and words, a running sum gives each its first position, one unnest per run pairs each character
-- with the next (bigrams in linear time, also for very long runs), and one tsvector is built from a literal
-- that lists every occurrence (tsvectorin merges them). Past 300,000 bytes of text that literal could exceed
-- tsvectorin's 1 MB of lexemes, so long texts are grouped per lexeme first (slower, same result).
CREATE OR REPLACE FUNCTION pgretrieval._cjk_vector(
    p_config text, p_body text, p_query boolean DEFAULT false, p_grouped boolean DEFAULT NULL)
RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_text text := pgretrieval._cjk_normalize(coalesce(p_body, ''));
    v_cjk text := pgretrieval._cjk_chars();
    v_pattern text := '([' || v_cjk || ']+)|([^' || v_cjk || pgretrieval._cjk_separators() || ']+)';
    v_stem boolean := p_config <> 'cjk_simple';
    v_unigrams boolean := p_config = 'cjk_unigrams';  -- every character of a run
    v_last boolean := v_unigrams OR p_config IN ('cjk', 'cjk_simple') AND NOT coalesce(p_query, false);
    v_shrink integer := CASE WHEN p_config = 'cjk_bigram' THEN 1 ELSE 0 END;  -- a run takes n - 1 positions
    v_literal text;
BEGIN
    -- Lexemes never hold a quote or a backslash here (both are separators), so they need no escaping.
    -- Per row: a word (c.x NULL), or character c.i of a run with the next one (c.y NULL for the last).
    IF NOT coalesce(p_grouped, octet_length(v_text) > 300000) THEN
        SELECT string_agg(
                   CASE WHEN t.run IS NULL THEN
                            CASE WHEN octet_length(t.word) < 2047 THEN
                                '''' || CASE WHEN v_stem THEN (ts_lexize('english_stem', t.word))[1] ELSE t.word END
                                || ''':' || (t.base + 1) END
                        WHEN c.y IS NOT NULL THEN
                            CASE WHEN v_unigrams THEN '''' || c.x || ''':' || (t.base + c.i) || ' ' ELSE '' END
                            || '''' || c.x || c.y || ''':' || (t.base + c.i)
                        WHEN v_last OR c.i = 1 THEN '''' || c.x || ''':' || (t.base + c.i)
                   END, ' ')
          INTO v_literal
          FROM (SELECT r.m[1] AS run, r.m[2] AS word,
                       sum(w.width) OVER (ORDER BY r.o) - w.width AS base
                  FROM regexp_matches(v_text, v_pattern, 'g') WITH ORDINALITY AS r(m, o)
                 CROSS JOIN LATERAL (SELECT CASE WHEN r.m[1] IS NULL THEN 1
                                                 ELSE greatest(length(r.m[1]) - v_shrink, 1) END AS width) w) t
          LEFT JOIN LATERAL unnest(string_to_array(t.run, NULL), string_to_array(substr(t.run, 2), NULL))
                    WITH ORDINALITY AS c(x, y, i) ON true;
        RETURN coalesce(v_literal::tsvector, ''::tsvector);
    END IF;

    SELECT string_agg('''' || g.lexeme || ''':' || g.positions, ' ')
      INTO v_literal
      FROM (SELECT k.lexeme, string_agg(k.pos::text, ',') AS positions
              FROM (SELECT r.m[1] AS run, r.m[2] AS word,
                           sum(w.width) OVER (ORDER BY r.o) - w.width AS base
                      FROM regexp_matches(v_text, v_pattern, 'g') WITH ORDINALITY AS r(m, o)
                     CROSS JOIN LATERAL (SELECT CASE WHEN r.m[1] IS NULL THEN 1
                                                     ELSE greatest(length(r.m[1]) - v_shrink, 1) END AS width) w) t
              LEFT JOIN LATERAL unnest(string_to_array(t.run, NULL), string_to_array(substr(t.run, 2), NULL))
                        WITH ORDINALITY AS c(x, y, i) ON true
             CROSS JOIN LATERAL (
                    VALUES (CASE WHEN t.run IS NULL THEN
                                     CASE WHEN octet_length(t.word) < 2047 THEN
                                         CASE WHEN v_stem THEN (ts_lexize('english_stem', t.word))[1] ELSE t.word END
                                     END
                                 WHEN c.y IS NOT NULL THEN c.x || c.y
                                 WHEN v_last OR c.i = 1 THEN c.x END,
                            t.base + coalesce(c.i, 1)),
                           (CASE WHEN v_unigrams AND c.y IS NOT NULL THEN c.x END, t.base + c.i)) AS k(lexeme, pos)
             WHERE k.lexeme IS NOT NULL
             GROUP BY k.lexeme) g;
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

-- Document lexemes of the cjk* configurations (kept for callers of earlier releases; _cjk_vector does the work).
CREATE OR REPLACE FUNCTION pgretrieval._cjk_tsvector(p_config text, p_body text, p_grouped boolean DEFAULT NULL)
RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgretrieval, public, extensions
RETURN pgretrieval._cjk_vector(p_config, p_body, false, p_grouped);

-- The auto configuration: CJK runs as in cjk (documents or queries), every stretch of text between them
-- through Postgres' english configuration, positions shifted so that the whole text keeps its order. Text
-- without CJK costs one to_tsvector('english', ...) call. Long texts are grouped per lexeme first, as in
-- _cjk_vector.
CREATE OR REPLACE FUNCTION pgretrieval._auto_vector(p_body text, p_query boolean DEFAULT false, p_grouped boolean DEFAULT NULL)
RETURNS tsvector
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_text text := pgretrieval._cjk_normalize(coalesce(p_body, ''));
    v_cjk text := pgretrieval._cjk_chars();
    v_pattern text := '([' || v_cjk || ']+)|([^' || v_cjk || ']+)';
    v_words text := '[^' || pgretrieval._cjk_separators() || ']';
    v_last boolean := NOT coalesce(p_query, false);
    v_literal text;
BEGIN
    IF v_text !~ ('[' || v_cjk || ']') THEN
        RETURN to_tsvector('english'::regconfig, v_text);
    END IF;
    -- Per row: a lexeme and position of an english stretch (u.lexeme), or character c.i of a run.
    IF NOT coalesce(p_grouped, octet_length(v_text) > 300000) THEN
        SELECT string_agg(
                   CASE WHEN t.run IS NULL THEN
                            '''' || replace(replace(u.lexeme, '\', '\\'), '''', '''''') || ''':' || (t.base + p.pos)
                        WHEN c.y IS NOT NULL THEN '''' || c.x || c.y || ''':' || (t.base + c.i)
                        WHEN v_last OR c.i = 1 THEN '''' || c.x || ''':' || (t.base + c.i)
                   END, ' ')
          INTO v_literal
          FROM (SELECT m.run, m.tv, sum(m.width) OVER (ORDER BY m.o) - m.width AS base
                  FROM (SELECT s.o, s.run, s.tv,
                               CASE WHEN s.run IS NOT NULL THEN length(s.run)
                                    WHEN s.tv IS NULL THEN 0
                                    ELSE coalesce((SELECT max(p) FROM unnest(s.tv) AS u, unnest(u.positions) AS p), 0)
                               END AS width
                          FROM (SELECT r.o, r.m[1] AS run,
                                       CASE WHEN r.m[2] ~ v_words THEN to_tsvector('english'::regconfig, r.m[2]) END AS tv
                                  FROM regexp_matches(v_text, v_pattern, 'g') WITH ORDINALITY AS r(m, o)) s) m) t
          LEFT JOIN LATERAL unnest(t.tv) AS u ON true
          LEFT JOIN LATERAL unnest(u.positions) AS p(pos) ON true
          LEFT JOIN LATERAL unnest(string_to_array(t.run, NULL), string_to_array(substr(t.run, 2), NULL))
                    WITH ORDINALITY AS c(x, y, i) ON true;
        RETURN coalesce(v_literal::tsvector, ''::tsvector);
    END IF;

    SELECT string_agg('''' || replace(replace(g.lexeme, '\', '\\'), '''', '''''') || ''':' || g.positions, ' ')
      INTO v_literal
      FROM (SELECT k.lexeme, string_agg(k.pos::text, ',') AS positions
              FROM (SELECT m.run, m.tv, sum(m.width) OVER (ORDER BY m.o) - m.width AS base
                      FROM (SELECT s.o, s.run, s.tv,
                                   CASE WHEN s.run IS NOT NULL THEN length(s.run)
                                        WHEN s.tv IS NULL THEN 0
                                        ELSE coalesce((SELECT max(p) FROM unnest(s.tv) AS u, unnest(u.positions) AS p), 0)
                                   END AS width
                              FROM (SELECT r.o, r.m[1] AS run,
                                           CASE WHEN r.m[2] ~ v_words THEN to_tsvector('english'::regconfig, r.m[2]) END AS tv
                                      FROM regexp_matches(v_text, v_pattern, 'g') WITH ORDINALITY AS r(m, o)) s) m) t
              LEFT JOIN LATERAL unnest(t.tv) AS u ON true
              LEFT JOIN LATERAL unnest(u.positions) AS p(pos) ON true
              LEFT JOIN LATERAL unnest(string_to_array(t.run, NULL), string_to_array(substr(t.run, 2), NULL))
                        WITH ORDINALITY AS c(x, y, i) ON true
             CROSS JOIN LATERAL (
                    VALUES (CASE WHEN t.run IS NULL THEN u.lexeme
                                 WHEN c.y IS NOT NULL THEN c.x || c.y
                                 WHEN v_last OR c.i = 1 THEN c.x END,
                            t.base + coalesce(c.i, p.pos))) AS k(lexeme, pos)
             WHERE k.lexeme IS NOT NULL
             GROUP BY k.lexeme) g;
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

-- Document lexemes of the auto configuration (kept for callers of earlier releases).
CREATE OR REPLACE FUNCTION pgretrieval._auto_tsvector(p_body text, p_grouped boolean DEFAULT NULL)
RETURNS tsvector
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pgretrieval, public, extensions
RETURN pgretrieval._auto_vector(p_body, false, p_grouped);

-- Lexemes of a document (p_query false) or a query piece (p_query true) in any configuration.
CREATE OR REPLACE FUNCTION pgretrieval._text_vector(p_config text, p_body text, p_query boolean)
RETURNS tsvector
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
BEGIN
    IF p_config IN ('cjk', 'cjk_simple', 'cjk_bigram', 'cjk_unigrams', 'auto') THEN
        IF getdatabaseencoding() <> 'UTF8' THEN
            RAISE EXCEPTION 'the % text configuration needs a UTF8 database, this one is %',
                p_config, getdatabaseencoding()
                USING ERRCODE = 'PR002',
                      HINT = 'Create the database with ENCODING ''UTF8'', or use a Postgres configuration such as simple.';
        END IF;
        IF p_config = 'auto' THEN
            RETURN pgretrieval._auto_vector(p_body, p_query);
        END IF;
        RETURN pgretrieval._cjk_vector(p_config, p_body, p_query);
    END IF;
    IF NOT pgretrieval.is_valid_text_config(p_config) THEN
        RAISE EXCEPTION 'unknown text search configuration "%"', p_config
            USING ERRCODE = 'PR002',
                  HINT = 'Use cjk, cjk_simple, cjk_bigram, cjk_unigrams, auto or a Postgres text search configuration such as english or simple (SELECT cfgname FROM pg_ts_config).';
    END IF;
    RETURN to_tsvector(p_config::regconfig, coalesce(p_body, ''));
END
$$;

-- The lexemes a document is indexed with (chunks.tsv).
CREATE OR REPLACE FUNCTION pgretrieval.text_to_tsvector(p_config text, p_body text)
RETURNS tsvector
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pgretrieval, public, extensions
RETURN pgretrieval._text_vector(p_config, p_body, false);

-- The lexemes a query piece is searched with: text_to_tsvector's, except that with cjk, cjk_simple and auto
-- a CJK run of two or more characters gives only its bigrams (see the top of the file). A one-character run
-- gives the character; lexical_search lets it match every lexeme that starts with it
-- (pgretrieval._is_prefix_lexeme).
CREATE OR REPLACE FUNCTION pgretrieval.query_to_tsvector(p_config text, p_body text)
RETURNS tsvector
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pgretrieval, public, extensions
RETURN pgretrieval._text_vector(p_config, p_body, true);

-- Does a query lexeme of this configuration stand for every lexeme that starts with it? Yes for a single CJK
-- character in cjk, cjk_simple and auto, whose documents index a character on its own only where it ends a
-- run (elsewhere it starts a bigram): together those lexemes give the character's exact tf and df.
CREATE OR REPLACE FUNCTION pgretrieval._is_prefix_lexeme(p_config text, p_lexeme text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgretrieval, public, extensions
RETURN p_config IN ('cjk', 'cjk_simple', 'auto') AND length(p_lexeme) = 1
       AND p_lexeme ~ ('[' || pgretrieval._cjk_chars() || ']');
