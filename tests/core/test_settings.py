from auditstream.settings import Settings, redact_url


def test_defaults_point_at_the_local_stack():
    s = Settings.from_env({})
    assert s.kafka_bootstrap == "127.0.0.1:19092"
    assert s.topics.events == "audit.events"
    assert s.kafka_config() == {"bootstrap.servers": "127.0.0.1:19092"}


def test_kafka_security_settings_pass_through_to_librdkafka():
    env = {
        "AUDITSTREAM_KAFKA_BOOTSTRAP": "broker-1:9093,broker-2:9093",
        "AUDITSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "AUDITSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "AUDITSTREAM_KAFKA_SASL_PASSWORD": "hunter2",
        "AUDITSTREAM_KAFKA_TOPIC_PREFIX": "prod",
        "AUDITSTREAM_KAFKA_PARTITIONS": "12",
    }
    s = Settings.from_env(env)
    conf = s.kafka_config(**{"client.id": "x"})
    assert conf["bootstrap.servers"] == "broker-1:9093,broker-2:9093"
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["client.id"] == "x"
    # Our own variables are not librdkafka properties.
    assert "topic.prefix" not in conf and "partitions" not in conf
    assert s.topics.alerts == "prod.alerts" and s.partitions == 12


def test_redacted_view_hides_secrets():
    env = {
        "AUDITSTREAM_KAFKA_SASL_PASSWORD": "hunter2",
        "AUDITSTREAM_CLICKHOUSE_URL": "https://writer:s3cret@ch.example:8443/auditstream",
    }
    shown = repr(Settings.from_env(env).redacted())
    assert "hunter2" not in shown and "s3cret" not in shown
    assert "ch.example:8443" in shown


def test_redact_url_keeps_urls_without_password():
    assert redact_url("http://127.0.0.1:8123/db") == "http://127.0.0.1:8123/db"
    assert redact_url("http://u:p@h:1/d") == "http://u:***@h:1/d"
