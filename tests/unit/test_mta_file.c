/* SPDX-License-Identifier: Apache-2.0 */
/* test_mta_file.c - the MTA file loader on files as the MTA and others
 * publish them (issue 12): C/A or CA, with or without the index column,
 * CRLF, a byte order mark, padded header names, RFC 4180 quotes; names that
 * cannot be carried as they are; hostile files. Every file is written by
 * the test: nothing here depends on the shared week. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "err.h"
#include "mta_file.h"
#include "reading.h"

#define MAY27_NY_MS 1685160000000LL /* 2023-05-27 00:00:00 EDT */
#define HOUR_MS 3600000LL

static char tmp_path[64];

/* Writes len bytes of text to a new temporary file, gzip'ed or plain;
 * returns its path (static, removed by the test's teardown). */
static const char *write_file(const char *text, size_t len, bool gz)
{
    if (tmp_path[0])
        unlink(tmp_path);
    snprintf(tmp_path, sizeof tmp_path, "/tmp/test_mta_file_XXXXXX");
    int fd = mkstemp(tmp_path);
    assert_true(fd >= 0);
    if (gz) {
        gzFile z = gzdopen(fd, "wb");
        assert_non_null(z);
        if (len)
            assert_int_equal(gzwrite(z, text, (unsigned)len), (int)len);
        assert_int_equal(gzclose(z), Z_OK);
    } else {
        assert_int_equal(write(fd, text, len), (ssize_t)len);
        close(fd);
    }
    return tmp_path;
}

static int remove_tmp(void **state)
{
    if (tmp_path[0])
        unlink(tmp_path);
    tmp_path[0] = '\0';
    return 0;
}

/* Loads text (gzip'ed); expects rc; on success returns the data set (the
 * caller frees it), on failure checks that err names the file and holds
 * want, and returns NULL. */
static struct ts_mta_data *load_text(const char *text, size_t len, int rc, const char *want)
{
    const char *path = write_file(text, len, true);
    struct ts_mta_data *d = (void *)1;
    char err[512] = "";

    int got = ts_mta_load(path, NULL, &d, err, sizeof err);
    if (got != rc)
        fail_msg("load returned %d, want %d: %s", got, rc, err);
    if (rc == TS_OK) {
        assert_non_null(d);
        return d;
    }
    assert_null(d);
    if (!strstr(err, want))
        fail_msg("error '%s' lacks '%s'", err, want);
    assert_non_null(strstr(err, path));
    return NULL;
}

static struct ts_mta_data *load_ok(const char *text)
{
    return load_text(text, strlen(text), TS_OK, "");
}

static void expect_error(const char *text, const char *want)
{
    load_text(text, strlen(text), TS_EPARSE, want);
}

/* The one turnstile A002/R051/02-00-00 at 59 ST with readings 2040/985 at
 * 00:00 and 2049/990 at 04:00, whatever the layout. */
static void expect_59st(struct ts_mta_data *d)
{
    assert_int_equal(d->n_turnstiles, 1);
    const struct ts_mta_turnstile *t = &d->turnstiles[0];
    assert_string_equal(t->ca, "A002");
    assert_string_equal(t->unit, "R051");
    assert_string_equal(t->scp, "02-00-00");
    assert_string_equal(t->station, "59 ST");
    assert_string_equal(t->linename, "NQR456W");
    assert_string_equal(t->division, "BMT");
    assert_int_equal(t->n_readings, 2);
    assert_true(t->readings[0].time_ms == MAY27_NY_MS);
    assert_int_equal(t->readings[0].entries, 2040);
    assert_int_equal(t->readings[0].exits, 985);
    assert_true(t->readings[1].time_ms == MAY27_NY_MS + 4 * HOUR_MS);
    assert_int_equal(t->readings[1].entries, 2049);
    assert_int_equal(t->readings[1].exits, 990);
    assert_int_equal(d->n_renamed, 0);
    ts_mta_free(d);
}

#define ROWS_NOINDEX                                                         \
    "A002,R051,02-00-00,59 ST,NQR456W,BMT,05/27/2023,00:00:00,REGULAR,2040,985\n" \
    "A002,R051,02-00-00,59 ST,NQR456W,BMT,05/27/2023,04:00:00,REGULAR,2049,990\n"
#define ROWS_INDEX                                                             \
    "0,A002,R051,02-00-00,59 ST,NQR456W,BMT,05/27/2023,00:00:00,REGULAR,2040,985\n" \
    "1,A002,R051,02-00-00,59 ST,NQR456W,BMT,05/27/2023,04:00:00,REGULAR,2049,990\n"

/* Recent MTA files say CA; the shared week says C/A; either with the
 * pandas index column or without. */
static void header_ca_or_c_a_with_or_without_index(void **state)
{
    expect_59st(load_ok("CA,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS\n"
                        ROWS_NOINDEX));
    expect_59st(load_ok("C/A,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS\n"
                        ROWS_NOINDEX));
    expect_59st(load_ok(",CA,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS\n"
                        ROWS_INDEX));
    expect_59st(load_ok(",C/A,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS\n"
                        ROWS_INDEX));
    /* the index column's name is not looked at (pandas re-read and re-saved) */
    expect_59st(load_ok("Unnamed: 0,CA,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,"
                        "ENTRIES,EXITS\n" ROWS_INDEX));
}

/* The historic files: "EXITS" and many spaces; case, blanks around names,
 * quoted names, a UTF-8 byte order mark, CR LF line ends; also plain CSV. */
static void header_spelling_as_real_weeks_show_it(void **state)
{
    expect_59st(load_ok("C/A,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,"
                        "EXITS                                                               \n"
                        ROWS_NOINDEX));
    expect_59st(load_ok(" ca , Unit,scp ,Station,LineName,division,date,time,desc,entries,"
                        "exits\t\n" ROWS_NOINDEX));
    expect_59st(load_ok("\"\",\"CA\",\"UNIT\",\"SCP\",\"STATION\",\"LINENAME\",\"DIVISION\","
                        "\"DATE\",\"TIME\",\"DESC\",\"ENTRIES\",\"EXITS   \"\n" ROWS_INDEX));
    expect_59st(load_ok("\r\n\n" "CA,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,"
                        "ENTRIES,EXITS\n" ROWS_NOINDEX));
    expect_59st(load_ok("\xEF\xBB\xBF" "CA,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,"
                        "ENTRIES,EXITS\n" ROWS_NOINDEX));
    expect_59st(load_ok("\xEF\xBB\xBF,C/A,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,"
                        "ENTRIES,EXITS   \r\n"
                        "0,A002,R051,02-00-00,59 ST,NQR456W,BMT,05/27/2023,00:00:00,REGULAR,2040,985\r\n"
                        "1,A002,R051,02-00-00,59 ST,NQR456W,BMT,05/27/2023,04:00:00,REGULAR,2049,990\r\n"
                        "\r\n"));
    /* blanks around data fields too; quoted numbers */
    expect_59st(load_ok("CA,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS\n"
                        " A002 ,R051,02-00-00, 59 ST ,NQR456W,BMT,05/27/2023,00:00:00,REGULAR, 2040,985 \n"
                        "\"A002\",\"R051\",\"02-00-00\",\"59 ST\",\"NQR456W\",\"BMT\",\"05/27/2023\","
                        "\"04:00:00\",\"REGULAR\",\"2049\",\"990\"\n"));

    /* not gzip'ed */
    const char text[] = "CA,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS\r\n"
                        ROWS_NOINDEX;
    const char *path = write_file(text, strlen(text), false);
    struct ts_mta_data *d = NULL;
    assert_int_equal(ts_mta_load(path, NULL, &d, NULL, 0), TS_OK);
    expect_59st(d);
}

/* Still the schema: anything else is refused, naming file, line and column. */
static void header_that_is_not_the_schema_is_refused(void **state)
{
    expect_error("CA,UNIT,SCPX,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS\n"
                 ROWS_NOINDEX, ":1: bad header: column 3 is 'SCPX', not SCP");
    expect_error("C A,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS\n"
                 ROWS_NOINDEX, ":1: bad header: column 1 is 'C A', not C/A");
    expect_error(",C/A,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,EXITS,ENTRIES\n"
                 ROWS_INDEX, ":1: bad header: column 11 is 'EXITS', not ENTRIES");
    expect_error("CA,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES\n",
                 ":1: bad header: 10 columns");
    expect_error(",,CA,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS\n",
                 ":1: bad header: more than 12 columns");
    expect_error("\"CA,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS\n",
                 ":1: a quoted field is not closed at the end of the file");
    expect_error("\n \r\n" "CA,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES\n",
                 ":3: bad header: 10 columns"); /* blank lines before it are skipped */
    expect_error("", "empty file (no header)");
    expect_error("\n\r\n  \n", "empty file (no header)");
    expect_error("\xEF\xBB\xBF", "empty file (no header)");
    /* rows must have the header's columns */
    expect_error(",CA,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS\n"
                 ROWS_NOINDEX, ":2: expected 12 columns, found 11");
}

/* A header and no rows is a valid, empty week. */
static void header_only(void **state)
{
    struct ts_mta_data *d =
        load_ok("CA,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS\r\n");
    assert_int_equal(d->n_turnstiles, 0);
    assert_int_equal(d->n_rows, 0);
    ts_mta_free(d);
    d = load_ok("CA,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS");
    assert_int_equal(d->n_turnstiles, 0);
    ts_mta_free(d);
}

#define HDR "CA,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS\n"

/* issue 12: apostrophes are ordinary characters of a name, quoted or not. */
static void quoted_and_unquoted_apostrophes_are_kept(void **state)
{
    struct ts_mta_data *d = load_ok(
        HDR "R406,R448,00-00-00,E 143/ST MARY'S,6,IRT,05/27/2023,00:00:00,REGULAR,10,20\n"
            "R406,R448,00-00-00,\"E 143/ST MARY'S\",6,IRT,05/27/2023,04:00:00,REGULAR,15,22\n"
            "\"N519\",R461,00-00-00,\"B'WAY-LAFAYETTE\",\"BDFQ6\",IND,05/27/2023,00:00:00,"
            "REGULAR,7,8\n"
            "N'1,R'2,0'3,'',\"'\",\"'IRT'\",05/27/2023,00:00:00,REGULAR,1,2\n");
    assert_int_equal(d->n_turnstiles, 3);
    assert_string_equal(d->turnstiles[0].station, "E 143/ST MARY'S");
    assert_int_equal(d->turnstiles[0].n_readings, 2);
    assert_int_equal(d->turnstiles[0].readings[1].entries, 15);
    assert_string_equal(d->turnstiles[1].station, "B'WAY-LAFAYETTE");
    assert_string_equal(d->turnstiles[1].ca, "N519");
    assert_string_equal(d->turnstiles[2].ca, "N'1");
    assert_string_equal(d->turnstiles[2].unit, "R'2");
    assert_string_equal(d->turnstiles[2].scp, "0'3");
    assert_string_equal(d->turnstiles[2].station, "''");
    assert_string_equal(d->turnstiles[2].linename, "'");
    assert_string_equal(d->turnstiles[2].division, "'IRT'");
    assert_int_equal(d->n_renamed, 0);
    ts_mta_free(d);

    /* the station filter takes the name as it is */
    const char *stations[] = {"B'WAY-LAFAYETTE"};
    struct ts_mta_filter f = {.stations = stations, .n_stations = 1};
    const char text[] =
        HDR "R406,R448,00-00-00,E 143/ST MARY'S,6,IRT,05/27/2023,00:00:00,REGULAR,10,20\n"
            "N519,R461,00-00-00,B'WAY-LAFAYETTE,BDFQ6,IND,05/27/2023,00:00:00,REGULAR,7,8\n";
    const char *path = write_file(text, strlen(text), true);
    assert_int_equal(ts_mta_load(path, &f, &d, NULL, 0), TS_OK);
    assert_int_equal(d->n_turnstiles, 1);
    assert_string_equal(d->turnstiles[0].scp, "00-00-00");
    assert_string_equal(d->turnstiles[0].ca, "N519");
    ts_mta_free(d);
}

/* A name that cannot be carried as it is (a comma, a double quote, a line
 * break, a control character, a byte that is not UTF-8, a comment for the
 * agent's config, empty) is renamed, counted; its readings are all kept. */
static void names_that_cannot_be_carried_are_renamed_and_counted(void **state)
{
    struct ts_mta_data *d = load_ok(
        HDR "A1,R1,00-00-00,\"FOO, BAR\",\"1,2\",\"IR\"\"T\",05/27/2023,00:00:00,REGULAR,10,20\n"
            "A1,R1,00-00-00,\"FOO, BAR\",\"1,2\",\"IR\"\"T\",05/27/2023,04:00:00,REGULAR,15,29\n"
            "A2,R1,00-00-00,\"TWO\r\nLINES\",\"\",  ,05/27/2023,00:00:00,REGULAR,1,1\n"
            "A2,R1,00-00-00,\"TWO\r\nLINES\",\"\",  ,05/27/2023,04:00:00,REGULAR,3,2\n"
            "A3,R1,00-00-00,TAB\tBEL\x07 DEL\x7f C1\xc2\x85 BAD\xff\xfe,CAF\xc3\x89,\xe2\x82\xac,"
            "05/27/2023,00:00:00,REGULAR,5,5\n"
            "A4,R1,00-00-00,PIER ;5 #6,L;1,#D,05/27/2023,00:00:00,REGULAR,6,6\n"
            "\"A,5\",\"R\"\"1\",\"0]0\",OK,L,D,05/27/2023,00:00:00,REGULAR,7,7\n"
            "\"A,5\",\"R\"\"1\",\"0]0\",OK,L,D,05/27/2023,04:00:00,REGULAR,8,9\n"
            "A6,R1,00-00-00,59 ST,NQR456W,BMT,05/27/2023,00:00:00,REGULAR,1,1\n"
            "A6,R1,00-00-00,59 ST,NQR456W,BMT,05/27/2023,04:00:00,REGULAR,\"4\",\" 3 \"\n");
    assert_int_equal(d->n_turnstiles, 6);
    assert_int_equal(d->n_renamed, 5);
    assert_int_equal(d->n_rows, 10);
    const struct ts_mta_turnstile *t = d->turnstiles;
    assert_string_equal(t[0].station, "FOO_ BAR");
    assert_string_equal(t[0].linename, "1_2");
    assert_string_equal(t[0].division, "IR_T");
    assert_int_equal(t[0].n_readings, 2);
    assert_int_equal(t[0].readings[1].entries, 15);
    assert_int_equal(t[0].readings[1].exits, 29);
    assert_string_equal(t[1].station, "TWO_LINES"); /* CR LF in quotes: one line break */
    assert_string_equal(t[1].linename, "_");
    assert_string_equal(t[1].division, "_");
    assert_int_equal(t[1].n_readings, 2);
    assert_string_equal(t[2].station, "TAB_BEL_ DEL_ C1_ BAD__");
    assert_string_equal(t[2].linename, "CAF\xc3\x89");
    assert_string_equal(t[2].division, "\xe2\x82\xac");
    assert_string_equal(t[3].station, "PIER _5 _6");
    assert_string_equal(t[3].linename, "L;1");
    assert_string_equal(t[3].division, "#D");
    assert_string_equal(t[4].ca, "A_5");
    assert_string_equal(t[4].unit, "R_1");
    assert_string_equal(t[4].scp, "0_0");
    assert_int_equal(t[4].n_readings, 2);
    assert_int_equal(t[4].readings[1].exits, 9);
    assert_string_equal(t[5].station, "59 ST");
    assert_int_equal(t[5].readings[1].entries, 4);
    assert_int_equal(t[5].readings[1].exits, 3);
    /* every name kept goes into a reading and an agent config as it is */
    for (size_t i = 0; i < d->n_turnstiles; i++) {
        const char *f[] = {t[i].ca, t[i].unit, t[i].scp, t[i].station, t[i].linename,
                           t[i].division};
        for (int k = 0; k < 6; k++)
            if (!ts_field_ok(f[k]))
                fail_msg("turnstile %zu field %d '%s': %s", i, k, f[k], ts_field_why(f[k]));
    }
    /* a quoted line break counts lines: the error after it names its line */
    ts_mta_free(d);
    expect_error(HDR "A2,R1,00-00-00,\"TWO\nLINES\",L,D,05/27/2023,00:00:00,REGULAR,1,1\n"
                     "A2,R1,00-00-00,X,L,D,05/27/2023,04:00:00,REGULAR,x,1\n",
                 ":4: bad ENTRIES/EXITS 'x'/'1'");
}

/* Two keys of the file must never become one turnstile: a renamed key that
 * meets another is an error, not a merge of two turnstiles' counts. */
static void renamed_key_that_meets_another_is_refused(void **state)
{
    expect_error(HDR "A_5,R1,00-00-00,OK,L,D,05/27/2023,00:00:00,REGULAR,7,7\n"
                     "\"A,5\",R1,00-00-00,OK,L,D,05/27/2023,00:00:00,REGULAR,7,7\n",
                 ":3: turnstile A_5,R1,00-00-00: C/A/UNIT/SCP carried as another turnstile's");
    expect_error(HDR "\"A,5\",R1,00-00-00,OK,L,D,05/27/2023,00:00:00,REGULAR,7,7\n"
                     "\"A\"\"5\",R1,00-00-00,OK,L,D,05/27/2023,00:00:00,REGULAR,7,7\n",
                 ":3: turnstile A_5,R1,00-00-00");
    expect_error(HDR "\"A\"\"5\",R1,00-00-00,OK,L,D,05/27/2023,00:00:00,REGULAR,7,7\n"
                     "A_5,R1,00-00-00,OK,L,D,05/27/2023,00:00:00,REGULAR,7,7\n",
                 ":3: turnstile A_5,R1,00-00-00");
    /* the same renamed key again, later, is the same turnstile */
    struct ts_mta_data *d =
        load_ok(HDR "\"A,5\",R1,00-00-00,OK,L,D,05/27/2023,00:00:00,REGULAR,7,7\n"
                    "B,R1,00-00-00,OK,L,D,05/27/2023,00:00:00,REGULAR,7,7\n"
                    "\"A,5\",R1,00-00-00,OK,L,D,05/27/2023,04:00:00,REGULAR,9,9\n");
    assert_int_equal(d->n_turnstiles, 2);
    assert_int_equal(d->turnstiles[0].n_readings, 2);
    assert_int_equal(d->n_renamed, 1);
    ts_mta_free(d);
    /* blanks around a key are not part of it, renamed or not */
    d = load_ok(HDR "\"A,5\",R1,00-00-00,OK,L,D,05/27/2023,00:00:00,REGULAR,7,7\n"
                    "\" A,5 \",R1,00-00-00,OK,L,D,05/27/2023,04:00:00,REGULAR,9,9\n"
                    "B,R1,00-00-00,\"X,Y\",L,D,05/27/2023,00:00:00,REGULAR,7,7\n"
                    "\" B\",R1,00-00-00,\"X,Y\",L,D,05/27/2023,04:00:00,REGULAR,9,9\n");
    assert_int_equal(d->n_turnstiles, 2);
    assert_int_equal(d->turnstiles[0].n_readings, 2);
    assert_int_equal(d->turnstiles[1].n_readings, 2);
    assert_string_equal(d->turnstiles[1].station, "X_Y");
    assert_int_equal(d->n_renamed, 2);
    ts_mta_free(d);
    /* keys may not be empty or too long */
    expect_error(HDR " ,R1,00-00-00,OK,L,D,05/27/2023,00:00:00,REGULAR,7,7\n",
                 ":2: C/A '' is empty");
    expect_error(HDR "A,R1,0123456789ABCDEF,OK,L,D,05/27/2023,00:00:00,REGULAR,7,7\n",
                 ":2: SCP '0123456789ABCDEF' is too long (at most 15 bytes");
}

static void bad_quoting_and_bad_rows(void **state)
{
    expect_error(HDR "A,R1,00-00-00,\"OK\"X,L,D,05/27/2023,00:00:00,REGULAR,7,7\n",
                 ":2: text after the closing quote of a field");
    expect_error(HDR "A,R1,00-00-00,OK,L,D,05/27/2023,00:00:00,REGULAR,7,7\n"
                     "A,R1,00-00-00,\"OK,L,D,05/27/2023,04:00:00,REGULAR,7,7\n",
                 ":3: a quoted field is not closed at the end of the file");
    expect_error(HDR "A,R1,00-00-00,OK,L,D,05/27/2023,00:00:00,REGULAR,7,7,8\n",
                 ":2: expected 11 columns, found 12");
    expect_error(HDR "A,R1,00-00-00,OK,L,D,05/27/2023,00:00:00,REGULAR,7,7,8,9,10\n",
                 ":2: expected 11 columns, found more than 12");
    expect_error(HDR "A,R1,00-00-00,OK,L,D,05/27/2023,00:00:00,,7,7\n", ":2: empty DESC");
    expect_error(HDR "A,R1,00-00-00,OK,L,D,05/27/2023,00:00:00,REGULAR,18446744073709551616,7\n",
                 ":2: bad ENTRIES/EXITS");
    /* the file's bytes never reach the message raw */
    expect_error(HDR "A,R1,00-00-00,OK,L,D,05/27/2023,00:00:00,REGULAR,\x1b[2J,7\n",
                 ":2: bad ENTRIES/EXITS '\\x1b[2J'/'7'");
    static const char nul[] = HDR "A,R1,00-00-00,OK,L,D,05/27/2023,00:00:00,REGULAR,7,7\0 junk\n";
    load_text(nul, sizeof nul - 1, TS_EPARSE, ":2: holds a NUL byte");
}

static void truncated_gzip(void **state)
{
    char text[8192] = HDR;
    for (int i = 0; i < 80; i++)
        strcat(text, "A002,R051,02-00-00,59 ST,NQR456W,BMT,05/27/2023,00:00:00,REGULAR,2040,985\n");
    const char *path = write_file(text, strlen(text), true);
    FILE *f = fopen(path, "r+");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    fclose(f);
    for (long cut = size - 1; cut > 10; cut = cut * 2 / 3) {
        assert_int_equal(truncate(path, cut), 0);
        struct ts_mta_data *d = (void *)1;
        char err[512] = "";
        assert_int_equal(ts_mta_load(path, NULL, &d, err, sizeof err), TS_EPARSE);
        assert_null(d);
        if (!strstr(err, "gzip") && !strstr(err, "header"))
            fail_msg("cut at %ld: %s", cut, err);
    }
}

/* A 10 MB line (no line break) is refused at the record bound, whatever
 * comes after it. */
static void ten_megabyte_line(void **state)
{
    size_t n = 10u << 20;
    char *text = malloc(n + sizeof HDR);
    assert_non_null(text);
    memcpy(text, HDR, sizeof HDR - 1);
    memset(text + sizeof HDR - 1, 'A', n);
    text[sizeof HDR - 1 + n] = '\0';
    load_text(text, strlen(text), TS_EPARSE, ":2: line longer than 4094 bytes");
    /* the same inside a quoted field: line breaks do not reset the bound */
    for (size_t i = sizeof HDR - 1; i < sizeof HDR - 1 + n; i += 100)
        text[i] = i == sizeof HDR - 1 ? '"' : '\n';
    load_text(text, strlen(text), TS_EPARSE, ":2: line longer than 4094 bytes");
    /* and as the header */
    load_text(text + sizeof HDR - 1, n, TS_EPARSE, ":1: line longer than 4094 bytes");
    free(text);
}

/* Random bytes in quoted names: every file loads (or is refused with a
 * reason) and every name kept is one the chain carries. */
static void random_names_are_carried_or_refused(void **state)
{
    uint64_t s = 12;
    char text[65536];
    for (int round = 0; round < 50; round++) {
        size_t n = (size_t)snprintf(text, sizeof text, "%s", HDR);
        for (int row = 0; row < 40; row++) {
            char name[64];
            size_t len = 0;
            for (int k = 0; k < 6; k++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                int c = (int)((s >> 33) % 255) + 1; /* 1..255, no NUL */
                if (c == '"')
                    name[len++] = '"';
                name[len++] = (char)c;
            }
            name[len] = '\0';
            n += (size_t)snprintf(text + n, sizeof text - n,
                                  "\"%s\",R1,00-00-%02d,\"%s\",\"%s\",D,05/27/2023,00:00:00,"
                                  "REGULAR,%d,%d\n", row % 3 ? "A" : name, row, name, name, row,
                                  row * 2);
        }
        const char *path = write_file(text, n, true);
        struct ts_mta_data *d = NULL;
        char err[512] = "";
        int rc = ts_mta_load(path, NULL, &d, err, sizeof err);
        unlink(path);
        if (rc != TS_OK) {
            assert_int_equal(rc, TS_EPARSE);
            assert_null(d);
            assert_true(strstr(err, "carried as another") || strstr(err, "is empty"));
            continue;
        }
        assert_int_equal(d->n_turnstiles, 40);
        for (size_t i = 0; i < d->n_turnstiles; i++) {
            const struct ts_mta_turnstile *t = &d->turnstiles[i];
            const char *f[] = {t->ca, t->unit, t->scp, t->station, t->linename, t->division};
            for (int k = 0; k < 6; k++) {
                if (!ts_field_ok(f[k]))
                    fail_msg("round %d: '%s': %s", round, f[k], ts_field_why(f[k]));
                assert_true(f[k][0] != ' ' && f[k][strlen(f[k]) - 1] != ' ');
                assert_null(strstr(f[k], " ;"));
                assert_null(strstr(f[k], " #"));
            }
            assert_null(strchr(t->ca, ']'));
            assert_int_equal(t->readings[0].entries, i);
        }
        ts_mta_free(d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(header_ca_or_c_a_with_or_without_index, remove_tmp),
        cmocka_unit_test_teardown(header_spelling_as_real_weeks_show_it, remove_tmp),
        cmocka_unit_test_teardown(header_that_is_not_the_schema_is_refused, remove_tmp),
        cmocka_unit_test_teardown(header_only, remove_tmp),
        cmocka_unit_test_teardown(quoted_and_unquoted_apostrophes_are_kept, remove_tmp),
        cmocka_unit_test_teardown(names_that_cannot_be_carried_are_renamed_and_counted, remove_tmp),
        cmocka_unit_test_teardown(renamed_key_that_meets_another_is_refused, remove_tmp),
        cmocka_unit_test_teardown(bad_quoting_and_bad_rows, remove_tmp),
        cmocka_unit_test_teardown(truncated_gzip, remove_tmp),
        cmocka_unit_test_teardown(ten_megabyte_line, remove_tmp),
        cmocka_unit_test_teardown(random_names_are_carried_or_refused, remove_tmp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
