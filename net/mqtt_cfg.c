/* SPDX-License-Identifier: Apache-2.0 */
/* mqtt_cfg.c - the [mqtt] connection settings' checks (see mqtt_cfg.h). */
#include "mqtt_cfg.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "err.h"

void ts_mqtt_link_cfg_check(struct ts_cfg_file *file, const void *inst,
                            const struct ts_mqtt_link_cfg *m)
{
#define BAD_(key) ts_config_bad(file, inst, key)
    if (m->reconnect_max_ms < m->reconnect_min_ms && !BAD_("reconnect_min_ms") &&
        !BAD_("reconnect_max_ms"))
        ts_config_error(file, inst, "mqtt", "reconnect_max_ms",
                        "must not be below reconnect_min_ms (%d)", m->reconnect_min_ms);
    if ((m->cert_file[0] != 0) != (m->key_file[0] != 0) && !BAD_("cert_file") && !BAD_("key_file"))
        ts_config_error(file, inst, "mqtt", m->cert_file[0] ? "cert_file" : "key_file",
                        "cert_file and key_file go together");
    if (m->cert_file[0] && !m->ca_file[0] && !BAD_("ca_file"))
        ts_config_error(file, inst, "mqtt", "cert_file", "needs ca_file (TLS)");
    if (m->password[0] && !m->username[0] && !BAD_("username"))
        ts_config_error(file, inst, "mqtt", "password", "needs username");
#undef BAD_
}

int ts_mqtt_link_cfg_valid(const struct ts_mqtt_link_cfg *m, char *why, size_t why_size)
{
    if (!m->host[0])
        return ts_fail(why, why_size, TS_ECONFIG, "%s", "host: empty");
    if (m->port < 1 || m->port > 65535)
        return ts_fail(why, why_size, TS_ECONFIG, "%s", "port: not in 1..65535");
    if (m->keepalive_s < TS_MQTT_KEEPALIVE_MIN || m->keepalive_s > TS_MQTT_KEEPALIVE_MAX)
        return ts_fail(why, why_size, TS_ECONFIG, "keepalive_s: not in %d..%d",
                       TS_MQTT_KEEPALIVE_MIN, TS_MQTT_KEEPALIVE_MAX);
    if (m->reconnect_min_ms < TS_MQTT_RECONNECT_MIN_MS ||
        m->reconnect_max_ms > TS_MQTT_RECONNECT_MAX_MS || m->reconnect_max_ms < m->reconnect_min_ms)
        return ts_fail(why, why_size, TS_ECONFIG,
                       "reconnect_min_ms/reconnect_max_ms: want %d <= min <= max <= %d",
                       TS_MQTT_RECONNECT_MIN_MS, TS_MQTT_RECONNECT_MAX_MS);
    if (!m->username[0] && m->password[0])
        return ts_fail(why, why_size, TS_ECONFIG, "%s", "password: set without username");
    if (!m->ca_file[0] && (m->cert_file[0] || m->key_file[0]))
        return ts_fail(why, why_size, TS_ECONFIG, "%s", "cert_file/key_file: TLS needs ca_file too");
    if (!m->cert_file[0] != !m->key_file[0])
        return ts_fail(why, why_size, TS_ECONFIG, "%s", "cert_file/key_file: set both or neither");
    const char *const names[] = {"ca_file", "cert_file", "key_file"};
    const char *const files[] = {m->ca_file, m->cert_file, m->key_file};
    for (int i = 0; i < 3; i++)
        if (files[i][0] && access(files[i], R_OK) != 0)
            return ts_fail(why, why_size, TS_ECONFIG, "%s '%s': %s", names[i], files[i],
                           strerror(errno));
    return TS_OK;
}

int ts_mqtt_client_id(const struct ts_mqtt_link_cfg *cfg, const char *def_prefix, const char *id,
                      const char *suffix, char *buf, size_t size)
{
    int n = cfg->client_id[0] ? snprintf(buf, size, "%s%s", cfg->client_id, suffix)
                              : snprintf(buf, size, "%s%s%s", def_prefix, id, suffix);
    return n < 0 || (size_t)n >= size ? TS_EINVAL : TS_OK;
}
