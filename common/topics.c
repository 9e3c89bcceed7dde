/* SPDX-License-Identifier: Apache-2.0 */
#include "topics.h"

#include <stdio.h>
#include <string.h>

#include "err.h"

static int fits(int n, size_t size) { return n < 0 || (size_t)n >= size ? TS_EINVAL : TS_OK; }

int ts_topic_agent(char *buf, size_t size, const char *station, const char *agent,
                   const char *leaf)
{
    return fits(snprintf(buf, size, TS_TOPIC_PREFIX "%s/%s/%s", station, agent, leaf), size);
}

int ts_topic_station(char *buf, size_t size, const char *station, const char *leaf)
{
    return fits(snprintf(buf, size, TS_TOPIC_PREFIX "%s/%s", station, leaf), size);
}

int ts_topic_bridge(char *buf, size_t size, const char *bridge_id, const char *leaf)
{
    return fits(snprintf(buf, size, "turnstile/bridge/%s/%s", bridge_id, leaf), size);
}

bool ts_topic_agent_parse(const char *topic, const char *leaf, char station[TS_ID_MAX],
                          char agent[TS_ID_MAX])
{
    static const char prefix[] = TS_TOPIC_PREFIX;
    char ids[2][TS_ID_MAX];

    if (!topic || strncmp(topic, prefix, sizeof prefix - 1) != 0)
        return false;
    const char *p = topic + sizeof prefix - 1;
    for (int i = 0; i < 2; i++) {
        const char *slash = strchr(p, '/');
        if (!slash || slash == p || slash - p >= TS_ID_MAX)
            return false;
        memcpy(ids[i], p, (size_t)(slash - p));
        ids[i][slash - p] = '\0';
        if (!ts_id_ok(ids[i]))
            return false;
        p = slash + 1;
    }
    if (strcmp(p, leaf) != 0)
        return false;
    if (station)
        memcpy(station, ids[0], TS_ID_MAX);
    if (agent)
        memcpy(agent, ids[1], TS_ID_MAX);
    return true;
}
