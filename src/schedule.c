/*-------------------------------------------------------------------------
 *
 * schedule.c
 *	  What the pg_cron scheduling needs from C: an evaluator of pg_cron's
 *	  schedule syntax (next and previous run times), the state of pg_cron on
 *	  this server, dbops.cron_jobs() and the cron_failures health check.
 *
 * Visibility of pg_cron's job messages.  pg_cron's row-level security shows
 * a role only its own jobs; dbops.cron_jobs() (through its SECURITY DEFINER
 * implementation dbops._cron_jobs()) shows every job to pg_monitor, but a
 * job's error messages only to the job's owner and to superusers: the
 * messages carry the values of the failed statements.  The entry point
 * dbops.cron_jobs() is C so that it knows its caller (inside a SECURITY
 * DEFINER function current_user is the owner).  dbops.health_snapshot()
 * writes a history that pg_monitor reads: in the report it runs
 * (dbops._health_snapshot_rows(), for_history), the cron_failures check
 * reads the jobs without their messages.
 *
 * The evaluator follows pg_cron's parser (a reduced Vixie cron): five
 * fields "minute hour day-of-month month day-of-week" with lists, ranges,
 * steps and month/day names; @yearly, @annually, @monthly, @weekly, @daily,
 * @midnight, @hourly and @reboot; "$" (last day of the month, pg_cron 1.6)
 * and "N seconds" (pg_cron 1.5).  As in cron, when either day field starts
 * with "*" a day must match both fields, otherwise either.  Times are taken
 * in pg_cron's time zone: cron.timezone when pg_cron defines it (1.5+),
 * otherwise GMT, which is what pg_cron 1.4 uses.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "dbops.h"
#include "healthkit.h"

/* set while the cron_failures check of a report kept for the history reads the jobs */
static bool cron_hide_messages = false;

/* A parsed schedule. */
typedef struct CronSpec
{
	uint64		minute;			/* bits 0..59 */
	uint32		hour;			/* bits 0..23 */
	uint32		dom;			/* bits 1..31 */
	uint32		month;			/* bits 1..12 */
	uint32		dow;			/* bits 0..6, Sunday is 0 (and 7) */
	bool		dom_star;		/* day-of-month field starts with '*' */
	bool		dow_star;		/* day-of-week field starts with '*' */
	bool		dom_last;		/* "$": last day of the month */
	bool		reboot;			/* @reboot: once at server start */
	int			interval_secs;	/* "N seconds", else 0 */
} CronSpec;

/* Local wall-clock minute in the schedule's time zone. */
typedef struct CronClock
{
	int			year;
	int			mon;			/* 1..12 */
	int			mday;			/* 1..31 */
	int			hour;
	int			min;
} CronClock;

/* how far ahead (or back) a schedule is searched before "never" */
#define CRON_SEARCH_YEARS	10

/* the columns of dbops.cron_status() */
#define CRON_STATUS_COLS	6

/* how many failing jobs the cron_failures detail names */
#define CRON_DETAIL_JOBS	5

static const char *const month_names[] = {
	"jan", "feb", "mar", "apr", "may", "jun",
	"jul", "aug", "sep", "oct", "nov", "dec", NULL
};

static const char *const dow_names[] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL
};

#define SKIP_BLANKS(p) 	while (*(p) == ' ' || *(p) == '\t') (p)++

/* pg_cron refuses schedules of MAX_FILE_BUFFER_LENGTH (1000) bytes or more */
#define CRON_SCHEDULE_MAX	999

/* how many characters of an input a message quotes */
#define CRON_ECHO_MAX		64

/*
 * What the schedule syntax allows: the pg_cron loaded on this server
 * decides, as it parses the schedules of its jobs itself.  Its library
 * defines cron.timezone from 1.5 on (which added "N seconds") and
 * cron.launch_active_jobs from 1.6 on (which added "$", the last day of
 * the month).  Without pg_cron loaded, the syntax of the newest pg_cron.
 */
typedef struct CronSyntax
{
	bool		seconds;		/* "N seconds" */
	bool		last_day;		/* "$" in the day-of-month field */
} CronSyntax;

static const char *cron_setting(const char *name);

static void
cron_syntax_loaded(CronSyntax *syn)
{
	if (cron_setting("cron.database_name") == NULL)
	{
		syn->seconds = true;
		syn->last_day = true;
		return;
	}
	syn->seconds = cron_setting("cron.timezone") != NULL;
	syn->last_day = cron_setting("cron.launch_active_jobs") != NULL;
}

static const CronSyntax cron_syntax_newest = {true, true};

/* The first CRON_ECHO_MAX characters of s (len bytes, -1: up to its end). */
static char *
cron_echo(const char *s, int len)
{
	return dbops_echo(s, len, CRON_ECHO_MAX);
}

/*
 * Read a number or, where names are given, a name (names[i] stands for
 * i + name_base).  Returns NULL, or why the text is not one.
 */
static char *
cron_parse_number(const char **pp, int *num, const char *const *names,
				  int name_base)
{
	const char *p = *pp;
	char		tok[16];
	int			len = 0;
	bool		digits = true;

	while (isalnum((unsigned char) *p))
	{
		if (len < (int) sizeof(tok) - 1)
			tok[len] = *p;
		if (!isdigit((unsigned char) *p))
			digits = false;
		len++;
		p++;
	}
	if (len == 0)
		return *p ? psprintf("expected a number at \"%s\"", cron_echo(p, -1))
			: pstrdup("expected a number at the end");
	if (len >= (int) sizeof(tok) - 1 || (digits && len > 9))
		return psprintf("\"%s\" is too long", cron_echo(*pp, len));
	tok[len] = '\0';
	*pp = p;

	if (names)
	{
		for (int i = 0; names[i] != NULL; i++)
		{
			if (pg_strcasecmp(tok, names[i]) == 0)
			{
				*num = i + name_base;
				return NULL;
			}
		}
	}
	if (!digits)
		return psprintf("\"%s\" is not a number%s", tok, names ? " or a name" : "");
	*num = atoi(tok);
	return NULL;
}

/*
 * One field: a comma-separated list of "*", "n" or "n-m", the last two
 * optionally followed by "/step".  Sets the bits low..high in *bits.  As in
 * pg_cron, a step is at most high.
 */
static char *
cron_parse_field(const char **pp, uint64 *bits, int low, int high,
				 const char *const *names, const char *what)
{
	const char *p = *pp;
	char	   *err;

	*bits = 0;
	for (;;)
	{
		int			first,
					last,
					step = 1;

		if (*p == '*')
		{
			first = low;
			last = high;
			p++;
		}
		else
		{
			if ((err = cron_parse_number(&p, &first, names, low)) != NULL)
				return psprintf("%s field: %s", what, err);
			if (*p == '-')
			{
				p++;
				if ((err = cron_parse_number(&p, &last, names, low)) != NULL)
					return psprintf("%s field: %s", what, err);
			}
			else if (*p == '/')
				return psprintf("%s field: a step needs a range or \"*\" before it (as in \"*/%s\")",
								what, cron_echo(p + 1, -1));
			else
				last = first;
		}
		if (*p == '/')
		{
			p++;
			if ((err = cron_parse_number(&p, &step, NULL, 0)) != NULL)
				return psprintf("%s field: step: %s", what, err);
			if (step <= 0)
				return psprintf("%s field: the step must be positive", what);
			if (step > high)
				return psprintf("%s field: the step %d is more than %d", what, step, high);
		}
		if (first < low || first > high || last < low || last > high)
			return psprintf("%s field: %d is out of range %d-%d", what,
							(first < low || first > high) ? first : last, low, high);
		if (first > last)
			return psprintf("%s field: range %d-%d runs backwards", what, first, last);
		for (int i = first; i <= last; i += step)
			*bits |= UINT64CONST(1) << i;

		if (*p != ',')
			break;
		p++;
	}
	if (*p != '\0' && *p != ' ' && *p != '\t')
		return psprintf("%s field: unexpected \"%s\"", what, cron_echo(p, -1));
	SKIP_BLANKS(p);
	*pp = p;
	return NULL;
}

/*
 * "N second" / "N seconds" as pg_cron 1.5+ reads it (sscanf " %u
 * secon%c%c %c", case-insensitive): blanks, digits, blanks, "second", then
 * either nothing, or "s" and blanks.  Returns 0 when the text is not of
 * that form, 1 when it is one (*secs is N), -1 when it is one pg_cron
 * refuses (*why says why).
 */
static int
cron_parse_interval(const char *s, int *secs, char **why)
{
	const char *p = s;
	int64		n = 0;
	int			ndigits = 0;

	SKIP_BLANKS(p);
	while (isdigit((unsigned char) *p))
	{
		if (ndigits < 12)
			n = n * 10 + (*p - '0');
		ndigits++;
		p++;
	}
	if (ndigits == 0)
		return 0;
	SKIP_BLANKS(p);
	if (pg_strncasecmp(p, "second", 6) != 0)
		return 0;
	p += 6;
	if (*p == 's' || *p == 'S')
	{
		p++;
		SKIP_BLANKS(p);
	}
	if (*p != '\0')
	{
		*why = psprintf("unexpected \"%s\" after \"second\"", cron_echo(p, -1));
		return -1;
	}
	if (ndigits > 12 || n < 1 || n > 59)
	{
		*why = pstrdup("an interval schedule takes 1 to 59 seconds");
		return -1;
	}
	*secs = (int) n;
	return 1;
}

/*
 * Parse a schedule as a pg_cron with syntax syn reads it; returns NULL, or
 * what is wrong with it.
 */
static char *
cron_parse(const char *schedule, CronSpec *spec, const CronSyntax *syn)
{
	const char *p = schedule;
	uint64		bits;
	char	   *err;
	int			form;

	memset(spec, 0, sizeof(CronSpec));
	if (strlen(schedule) > CRON_SCHEDULE_MAX)
		return psprintf("it is %d bytes long; pg_cron reads at most %d",
						(int) strlen(schedule), CRON_SCHEDULE_MAX);
	SKIP_BLANKS(p);
	if (*p == '\0')
		return pstrdup("the schedule is empty");

	if (*p == '@')
	{
		const char *word = ++p;
		int			len;

		while (*p && *p != ' ' && *p != '\t')
			p++;
		len = p - word;
		SKIP_BLANKS(p);
		if (*p != '\0')
			return psprintf("unexpected \"%s\" after @%s", cron_echo(p, -1), cron_echo(word, len));

#define WORD_IS(w) (len == (int) strlen(w) && strncmp(word, w, len) == 0)
		if (WORD_IS("reboot") || WORD_IS("restart"))
		{
			spec->reboot = true;
			return NULL;
		}
		spec->minute = 1;		/* minute 0 */
		spec->hour = 0xFFFFFF;
		spec->dom = 0xFFFFFFFE;
		spec->month = 0x1FFE;
		spec->dow = 0x7F;
		if (WORD_IS("yearly") || WORD_IS("annually"))
		{
			spec->hour = 1;
			spec->dom = 1 << 1;
			spec->month = 1 << 1;
			spec->dow_star = true;
		}
		else if (WORD_IS("monthly"))
		{
			spec->hour = 1;
			spec->dom = 1 << 1;
			spec->dow_star = true;
		}
		else if (WORD_IS("weekly"))
		{
			spec->hour = 1;
			spec->dow = 1;
			spec->dom_star = true;
		}
		else if (WORD_IS("daily") || WORD_IS("midnight"))
			spec->hour = 1;
		else if (!WORD_IS("hourly"))
			return psprintf("unknown keyword \"@%s\"", cron_echo(word, len));
#undef WORD_IS
		return NULL;
	}

	form = cron_parse_interval(schedule, &spec->interval_secs, &err);
	if (form != 0 && !syn->seconds)
		return pstrdup("\"N seconds\" schedules need pg_cron 1.5 or later, and the pg_cron loaded here is older");
	if (form < 0)
		return err;
	if (form > 0)
		return NULL;

	if ((err = cron_parse_field(&p, &spec->minute, 0, 59, NULL, "minute")) != NULL)
		return err;
	if (*p == '\0')
		return pstrdup("expected 5 fields, found 1");
	if ((err = cron_parse_field(&p, &bits, 0, 23, NULL, "hour")) != NULL)
		return err;
	spec->hour = (uint32) bits;
	if (*p == '\0')
		return pstrdup("expected 5 fields, found 2");
	if (*p == '$' && (p[1] == ' ' || p[1] == '\t'))
	{
		if (!syn->last_day)
			return pstrdup("day-of-month field: \"$\" (the last day of the month) needs pg_cron 1.6 or later, and the pg_cron loaded here is older");
		spec->dom_last = true;
		p++;
		SKIP_BLANKS(p);
	}
	else
	{
		spec->dom_star = (*p == '*');
		if ((err = cron_parse_field(&p, &bits, 1, 31, NULL, "day-of-month")) != NULL)
			return err;
		spec->dom = (uint32) bits;
	}
	if (*p == '\0')
		return pstrdup("expected 5 fields, found 3");
	if ((err = cron_parse_field(&p, &bits, 1, 12, month_names, "month")) != NULL)
		return err;
	spec->month = (uint32) bits;
	if (*p == '\0')
		return pstrdup("expected 5 fields, found 4");
	spec->dow_star = (*p == '*');
	if ((err = cron_parse_field(&p, &bits, 0, 7, dow_names, "day-of-week")) != NULL)
		return err;
	if (bits & (1 << 7))
		bits |= 1;
	spec->dow = (uint32) (bits & 0x7F);
	if (*p != '\0')
		return psprintf("unexpected \"%s\" after the 5 fields", cron_echo(p, -1));
	return NULL;
}

static int
days_in_month(int year, int mon)
{
	return day_tab[isleap(year) ? 1 : 0][mon - 1];
}

static bool
cron_day_matches(const CronSpec *spec, int year, int mon, int mday)
{
	int			wday = j2day(date2j(year, mon, mday));
	bool		dom_ok;
	bool		dow_ok;

	dom_ok = (spec->dom & (((uint32) 1) << mday)) != 0 ||
		(spec->dom_last && mday == days_in_month(year, mon));
	dow_ok = (spec->dow & (((uint32) 1) << wday)) != 0;
	if (spec->dom_star || spec->dow_star)
		return dom_ok && dow_ok;
	return dom_ok || dow_ok;
}

static void
clock_add_day(CronClock *c)
{
	if (++c->mday > days_in_month(c->year, c->mon))
	{
		c->mday = 1;
		if (++c->mon > 12)
		{
			c->mon = 1;
			c->year++;
		}
	}
}

static void
clock_sub_day(CronClock *c)
{
	if (--c->mday < 1)
	{
		if (--c->mon < 1)
		{
			c->mon = 12;
			c->year--;
		}
		c->mday = days_in_month(c->year, c->mon);
	}
}

static void
clock_add_minute(CronClock *c)
{
	if (++c->min > 59)
	{
		c->min = 0;
		if (++c->hour > 23)
		{
			c->hour = 0;
			clock_add_day(c);
		}
	}
}

static void
clock_sub_minute(CronClock *c)
{
	if (--c->min < 0)
	{
		c->min = 59;
		if (--c->hour < 0)
		{
			c->hour = 23;
			clock_sub_day(c);
		}
	}
}

/* The wall-clock minute of t in tz (seconds dropped); false when out of range. */
static bool
clock_from_ts(TimestampTz t, pg_tz *tz, CronClock *c)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			tzoff;

	if (timestamp2tm(t, &tzoff, &tm, &fsec, NULL, tz) != 0)
		return false;
	c->year = tm.tm_year;
	c->mon = tm.tm_mon;
	c->mday = tm.tm_mday;
	c->hour = tm.tm_hour;
	c->min = tm.tm_min;
	return true;
}

/* what clock_to_ts() found */
typedef enum ClockInstant
{
	CLOCK_OK,					/* *result is the instant */
	CLOCK_SKIPPED,				/* a daylight-saving change skips it */
	CLOCK_OUT_OF_RANGE			/* before or after the range of timestamps */
} ClockInstant;

/* The instant of a wall-clock minute in tz. */
static ClockInstant
clock_to_ts(const CronClock *c, pg_tz *tz, TimestampTz *result)
{
	struct pg_tm tm;
	CronClock	back;
	int			tzoff;

	if (!IS_VALID_JULIAN(c->year, c->mon, c->mday))
		return CLOCK_OUT_OF_RANGE;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = c->year;
	tm.tm_mon = c->mon;
	tm.tm_mday = c->mday;
	tm.tm_hour = c->hour;
	tm.tm_min = c->min;
	tzoff = DetermineTimeZoneOffset(&tm, tz);
	if (tm2timestamp(&tm, 0, &tzoff, result) != 0 || !IS_VALID_TIMESTAMP(*result))
		return CLOCK_OUT_OF_RANGE;
	if (!clock_from_ts(*result, tz, &back))
		return CLOCK_OUT_OF_RANGE;
	if (back.year == c->year && back.mon == c->mon && back.mday == c->mday &&
		back.hour == c->hour && back.min == c->min)
		return CLOCK_OK;
	return CLOCK_SKIPPED;
}

#define MINUTE_MATCHES(s, c)	(((s)->minute & (UINT64CONST(1) << (c).min)) != 0)
#define HOUR_MATCHES(s, c)		(((s)->hour & (((uint32) 1) << (c).hour)) != 0)
#define MONTH_MATCHES(s, c)		(((s)->month & (((uint32) 1) << (c).mon)) != 0)

/*
 * First minute strictly after "after" the schedule fires at; false when
 * none within CRON_SEARCH_YEARS, or before the end of the timestamps.
 */
static bool
cron_next(const CronSpec *spec, TimestampTz after, pg_tz *tz, TimestampTz *result)
{
	CronClock	c;
	int			limit;

	if (!clock_from_ts(after, tz, &c))
		return false;
	limit = c.year + CRON_SEARCH_YEARS;
	clock_add_minute(&c);
	while (c.year <= limit)
	{
		CHECK_FOR_INTERRUPTS();
		if (!MONTH_MATCHES(spec, c))
		{
			c.mday = 1;
			c.hour = 0;
			c.min = 0;
			if (++c.mon > 12)
			{
				c.mon = 1;
				c.year++;
			}
		}
		else if (!cron_day_matches(spec, c.year, c.mon, c.mday))
		{
			c.hour = 0;
			c.min = 0;
			clock_add_day(&c);
		}
		else if (!HOUR_MATCHES(spec, c))
		{
			c.min = 59;
			clock_add_minute(&c);
		}
		else if (!MINUTE_MATCHES(spec, c))
			clock_add_minute(&c);
		else
		{
			switch (clock_to_ts(&c, tz, result))
			{
				case CLOCK_OK:
					if (*result > after)
						return true;
					break;
				case CLOCK_SKIPPED:
					break;
				case CLOCK_OUT_OF_RANGE:
					return false;
			}
			clock_add_minute(&c);
		}
	}
	return false;
}

/*
 * Last minute at or before "before" the schedule fired at; false when none
 * within CRON_SEARCH_YEARS, or after the start of the timestamps.
 */
static bool
cron_prev(const CronSpec *spec, TimestampTz before, pg_tz *tz, TimestampTz *result)
{
	CronClock	c;
	int			limit;

	if (!clock_from_ts(before, tz, &c))
		return false;
	limit = c.year - CRON_SEARCH_YEARS;
	while (c.year >= limit)
	{
		CHECK_FOR_INTERRUPTS();
		if (!MONTH_MATCHES(spec, c))
		{
			if (--c.mon < 1)
			{
				c.mon = 12;
				c.year--;
			}
			c.mday = days_in_month(c.year, c.mon);
			c.hour = 23;
			c.min = 59;
		}
		else if (!cron_day_matches(spec, c.year, c.mon, c.mday))
		{
			c.hour = 23;
			c.min = 59;
			clock_sub_day(&c);
		}
		else if (!HOUR_MATCHES(spec, c))
		{
			c.min = 0;
			clock_sub_minute(&c);
		}
		else if (!MINUTE_MATCHES(spec, c))
			clock_sub_minute(&c);
		else
		{
			switch (clock_to_ts(&c, tz, result))
			{
				case CLOCK_OK:
					if (*result <= before)
						return true;
					break;
				case CLOCK_SKIPPED:
					break;
				case CLOCK_OUT_OF_RANGE:
					return false;
			}
			clock_sub_minute(&c);
		}
	}
	return false;
}

/* A pg_cron setting, NULL when pg_cron is not loaded (or does not have it). */
static const char *
cron_setting(const char *name)
{
	const char *value = GetConfigOption(name, true, false);

	if (value == NULL || (GetConfigOptionFlags(name, true) & GUC_CUSTOM_PLACEHOLDER))
		return NULL;
	return value;
}

/* The time zone pg_cron reads schedules in. */
static const char *
cron_timezone(void)
{
	const char *tz = cron_setting("cron.timezone");

	return tz ? tz : "GMT";
}

#define CRON_SCHEDULE_HINT \
	"Write five fields \"minute hour day-of-month month day-of-week\" (for example \"30 3 * * *\"), " \
	"or @hourly, @daily, @weekly, @monthly, @yearly, @reboot; \"N seconds\" (1 to 59) needs pg_cron 1.5, \"$\" pg_cron 1.6."

/* Parse a schedule as the pg_cron loaded here reads it, or raise 22023. */
static void
cron_parse_or_error(const char *schedule, CronSpec *spec)
{
	CronSyntax	syn;
	char	   *err;

	cron_syntax_loaded(&syn);
	err = cron_parse(schedule, spec, &syn);
	if (err)
	{
		/* (read before the report: no catalog access while it is built) */
		bool		outdated = dbops_catalog_outdated();

		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid cron schedule \"%s\"", cron_echo(schedule, -1)),
				 errdetail("%s.", err),
				 outdated ?
				 errhint("%s %s", CRON_SCHEDULE_HINT,
						 "If this schedule is a pg_cron job's read by dbops.jobs: " DBOPS_OUTDATED_HINT
						 " (1.1 lists such a job without a next run).") :
				 errhint(CRON_SCHEDULE_HINT)));
	}
}

/* The time zone named tzname, or raise 22023. */
static pg_tz *
cron_tz_or_error(const char *tzname)
{
	pg_tz	   *tz = pg_tzset(tzname);

	if (tz == NULL || !pg_tz_acceptable(tz))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("time zone \"%s\" not recognized", cron_echo(tzname, -1)),
				 errhint("Name a time zone of pg_timezone_names, such as 'UTC' or 'Europe/Berlin', or pass NULL for pg_cron's (cron.timezone, or GMT).")));
	return tz;
}

static Datum
cron_run_common(FunctionCallInfo fcinfo, bool next)
{
	const char *argname = next ? "after" : "before";
	char	   *schedule;
	TimestampTz from;
	const char *tzname;
	pg_tz	   *tz;
	CronSpec	spec;
	TimestampTz result;
	bool		found;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("schedule must not be NULL"),
				 errhint(CRON_SCHEDULE_HINT)));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", argname),
				 errhint("Pass a time, such as now() (the default).")));
	schedule = text_to_cstring(PG_GETARG_TEXT_PP(0));
	from = PG_GETARG_TIMESTAMPTZ(1);
	tzname = PG_ARGISNULL(2) ? cron_timezone() : text_to_cstring(PG_GETARG_TEXT_PP(2));

	cron_parse_or_error(schedule, &spec);
	tz = cron_tz_or_error(tzname);
	if (TIMESTAMP_NOT_FINITE(from))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("%s must be a finite timestamp", argname),
				 errhint("Pass a time, such as now() (the default).")));

	/* @reboot and "N seconds" jobs have no wall-clock run times */
	if (spec.reboot || spec.interval_secs > 0)
		PG_RETURN_NULL();

	/* NULL also at the ends of the range of timestamps */
	found = next ? cron_next(&spec, from, tz, &result) : cron_prev(&spec, from, tz, &result);
	if (!found)
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(result);
}

PG_FUNCTION_INFO_V1(dbops_cron_next_run);

/*
 * dbops.cron_next_run(schedule, after, timezone): the first time after
 * "after" that the schedule fires; NULL when it never does within ten
 * years (e.g. 30 February), for @reboot and for "N seconds".
 */
Datum
dbops_cron_next_run(PG_FUNCTION_ARGS)
{
	return cron_run_common(fcinfo, true);
}

PG_FUNCTION_INFO_V1(dbops_cron_prev_run);

/* dbops.cron_prev_run(schedule, before, timezone): the last time at or before. */
Datum
dbops_cron_prev_run(PG_FUNCTION_ARGS)
{
	return cron_run_common(fcinfo, false);
}

PG_FUNCTION_INFO_V1(dbops_cron_run);

/*
 * dbops._cron_run(schedule, at, next): for the readers of pg_cron's jobs
 * (dbops.cron_jobs()): the next run after "at" (next) or the last at or
 * before it, in pg_cron's time zone, as cron_next_run()/cron_prev_run()
 * compute them, but NULL, never an error, for a schedule dbops does not
 * read (pg_cron accepts a few forms dbops refuses, such as text after the
 * fifth field), so that one job cannot break the view for everyone.
 */
Datum
dbops_cron_run(PG_FUNCTION_ARGS)
{
	char	   *schedule;
	TimestampTz at;
	pg_tz	   *tz;
	CronSpec	spec;
	TimestampTz result;
	bool		found;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	schedule = text_to_cstring(PG_GETARG_TEXT_PP(0));
	at = PG_GETARG_TIMESTAMPTZ(1);
	if (TIMESTAMP_NOT_FINITE(at) || cron_parse(schedule, &spec, &cron_syntax_newest) != NULL)
		PG_RETURN_NULL();
	if (spec.reboot || spec.interval_secs > 0)
		PG_RETURN_NULL();
	tz = pg_tzset(cron_timezone());
	if (tz == NULL)
		PG_RETURN_NULL();
	found = PG_GETARG_BOOL(2) ? cron_next(&spec, at, tz, &result) : cron_prev(&spec, at, tz, &result);
	if (!found)
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(result);
}

/*
 * Version of pg_cron installed in this database, or NULL.  Runs under SPI
 * (connected by the caller).
 */
static char *
cron_installed_version(void)
{
	int			ret;

	if (!OidIsValid(get_extension_oid("pg_cron", true)))
		return NULL;
	ret = SPI_execute("SELECT e.extversion FROM pg_catalog.pg_extension e"
					  " WHERE e.extname OPERATOR(pg_catalog.=) 'pg_cron'::pg_catalog.name",
					  true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_extension: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

PG_FUNCTION_INFO_V1(dbops_cron_status);

/*
 * dbops.cron_status(): whether pg_cron is loaded, the database it keeps its
 * jobs in, whether (and which version) it is installed in this database,
 * and the settings dbops depends on.  pg_cron's settings are reserved to
 * superusers and pg_read_all_settings; only these few are shown here.
 */
Datum
dbops_cron_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[CRON_STATUS_COLS];
	bool		nulls[CRON_STATUS_COLS] = {0};
	const char *crondb = cron_setting("cron.database_name");
	const char *logrun = cron_setting("cron.log_run");
	char	   *version;
	bool		b;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	dbops_check_result_columns(fcinfo, tupdesc, CRON_STATUS_COLS);

	SPI_connect();
	version = cron_installed_version();
	if (version)
		values[3] = CStringGetTextDatum(version);
	else
		nulls[3] = true;
	SPI_finish();

	values[0] = BoolGetDatum(crondb != NULL);
	if (crondb)
		values[1] = CStringGetTextDatum(crondb);
	else
		nulls[1] = true;
	values[2] = BoolGetDatum(!nulls[3]);
	if (logrun && parse_bool(logrun, &b))
		values[4] = BoolGetDatum(b);
	else
		nulls[4] = true;
	if (crondb)
		values[5] = CStringGetTextDatum(cron_timezone());
	else
		nulls[5] = true;

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * cron_failures: pg_cron jobs whose last run failed, and dbops jobs that did
 * not run when their schedule said they should have (dbops.jobs.missed_run).
 * The value is the number of such jobs.  Reads pg_cron's tables through
 * dbops.cron_jobs(), which sees every role's jobs (pg_cron's row-level
 * security shows a role only its own) and the messages of those the role
 * running the check may see; none in a report kept for the history.
 */
void
dbops_check_cron_failures(DbopsReport *report, DbopsCheckResult *res)
{
	static SPIPlanPtr plan = NULL;
	const char *crondb = cron_setting("cron.database_name");
	const char *logrun = cron_setting("cron.log_run");
	char	   *version;
	SPITupleTable *volatile tt = NULL;
	uint64		njobs;
	int			ndbops = 0;
	bool		b;
	DbopsCulprits bad;

	version = cron_installed_version();
	if (version == NULL)
	{
		char	   *here = get_database_name(MyDatabaseId);

		if (crondb == NULL)
		{
			dbops_check_skip(res, "pg_cron is not loaded (it is not in shared_preload_libraries)");
			appendStringInfoString(&res->hint,
								   "To schedule jobs, add pg_cron to shared_preload_libraries, restart, and run CREATE EXTENSION pg_cron; or disable this check in dbops.health_thresholds.");
		}
		else if (here == NULL || strcmp(crondb, here) != 0)
		{
			dbops_check_skip(res, "pg_cron keeps its jobs in database \"%s\" (cron.database_name), not in this one",
							 crondb);
			appendStringInfo(&res->hint, "Run dbops.health() in database \"%s\" to see its jobs.", crondb);
		}
		else
		{
			dbops_check_skip(res, "pg_cron is loaded but not installed in this database");
			appendStringInfoString(&res->hint, "Run CREATE EXTENSION pg_cron in this database.");
		}
		return;
	}
	if (logrun && parse_bool(logrun, &b) && !b)
	{
		dbops_check_unknown(res, "cron.log_run is off: pg_cron does not record job runs");
		appendStringInfoString(&res->hint, "Set cron.log_run = on (and restart) to have job runs recorded in cron.job_run_details.");
		return;
	}

	cron_hide_messages = report->for_history;
	PG_TRY();
	{
		tt = dbops_kept_query(&plan,
							  "SELECT j.job_name, j.jobid, j.database, j.is_dbops, j.last_status, "
							  "       pg_catalog.to_char(j.last_start, 'YYYY-MM-DD HH24:MI:SSOF'::pg_catalog.text),"
							  "       j.last_message, "
							  "       pg_catalog.to_char(j.missed_run, 'YYYY-MM-DD HH24:MI:SSOF'::pg_catalog.text) "
							  "FROM dbops.cron_jobs() j "
							  "ORDER BY j.missed_run IS NULL, j.last_start DESC NULLS LAST, j.jobid");
	}
	PG_FINALLY();
	{
		cron_hide_messages = false;
	}
	PG_END_TRY();
	njobs = SPI_processed;

	dbops_culprits_init(&bad, &res->detail, CRON_DETAIL_JOBS, ": ", "; ");
	for (uint64 i = 0; i < njobs; i++)
	{
		char	   *name = dbops_col_cstring(tt, i, 1);
		char	   *db = dbops_col_cstring(tt, i, 3);
		char	   *status = dbops_col_cstring(tt, i, 5);
		char	   *missed = dbops_col_cstring(tt, i, 8);
		bool		failed = status != NULL && strcmp(status, "failed") == 0;

		CHECK_FOR_INTERRUPTS();

		if (dbops_col_bool(tt, i, 4))
			ndbops++;
		if (!failed && missed == NULL)
			continue;
		if (!dbops_culprit(&bad))
			continue;
		appendStringInfo(&res->detail, "%s (job %s, database %s)",
						 name ? cron_echo(name, -1) : "(unnamed)", dbops_col_text(tt, i, 2),
						 db ? cron_echo(db, -1) : "?");
		if (missed)
			appendStringInfo(&res->detail, " did not run at %s", missed);
		if (missed && failed)
			appendStringInfoString(&res->detail, " and");
		if (failed)
		{
			char	   *msg = dbops_col_cstring(tt, i, 7);

			appendStringInfo(&res->detail, " failed at %s", dbops_col_text(tt, i, 6));
			if (msg && msg[0])
			{
				appendStringInfoString(&res->detail, ": ");
				dbops_append_clipped(&res->detail, msg, 120);
			}
		}
	}

	dbops_check_value(res, bad.count, "jobs");
	if (bad.count == 0)
	{
		appendStringInfo(&res->detail, "%lu pg_cron jobs (%d of dbops), none failing or late",
						 (unsigned long) njobs, ndbops);
		return;
	}
	dbops_culprits_end(&bad);
	dbops_detail_prepend(res, psprintf("%d of %lu pg_cron jobs failing or late",
									   bad.count, (unsigned long) njobs));
	appendStringInfoString(&res->hint,
						   "See SELECT * FROM dbops.jobs and cron.job_run_details for the errors; fix the job or its privileges. "
						   "A job that did not run points at the pg_cron launcher: check the server log and cron.max_running_jobs.");
}

PG_FUNCTION_INFO_V1(dbops_cron_jobs);

/*
 * dbops.cron_jobs(): every pg_cron job; dbops._cron_jobs(viewer), SECURITY
 * DEFINER, reads them, showing the messages of the jobs viewer may see in
 * pg_cron (its own; every job for a superuser), none for NULL.  Called
 * directly (no EXECUTE privilege on the implementation needed), with the
 * caller's materialize-mode result set.
 */
Datum
dbops_cron_jobs(PG_FUNCTION_ARGS)
{
	static const Oid argtypes[] = {OIDOID};
	List	   *fname = list_make2(makeString("dbops"), makeString("_cron_jobs"));
	Oid			fn = LookupFuncName(fname, 1, argtypes, false);
	FmgrInfo	flinfo;
	LOCAL_FCINFO(fc, 1);
	Datum		result;

	fmgr_info(fn, &flinfo);
	InitFunctionCallInfoData(*fc, &flinfo, 1, fcinfo->fncollation, NULL,
							 fcinfo->resultinfo);
	fc->args[0].value = ObjectIdGetDatum(GetUserId());
	fc->args[0].isnull = cron_hide_messages;
	result = FunctionCallInvoke(fc);
	fcinfo->isnull = fc->isnull;
	return result;
}
