//! What librdkafka says about a client's connections, kept so that a failure can say why.
//!
//! librdkafka reports connection trouble (a broker down, a TLS handshake refused, a SASL login
//! rejected) through its error callback and goes on retrying by itself; the caller only sees
//! requests time out. Each Tidal client keeps the latest such report. Authentication and TLS
//! failures do not mend by retrying (a wrong password, an unknown certificate authority): like
//! Kafka's own clients, which treat them as non-retriable, Tidal fails the job at once, naming
//! librdkafka's reason and the properties to check — while connecting (a source listing its
//! partitions, a sink before the brokers have acknowledged any message). Once a client has
//! worked, such a report is only logged and librdkafka goes on retrying (credentials rotated on
//! the brokers, a certificate renewed), as with any other trouble. Other reports only make
//! timeouts say why.

use std::sync::{Arc, Mutex};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// The properties a TLS or authentication failure asks the user to check.
pub(crate) const SECURITY_PROPERTIES: &str =
    "security.protocol, sasl.mechanism, sasl.username, sasl.password, ssl.ca.location";

/// The latest error librdkafka reported for one client (shared with its context).
#[derive(Clone, Default)]
pub(crate) struct ClientErrors(Arc<Mutex<Reports>>);

#[derive(Default)]
struct Reports {
    /// The first authentication or TLS failure.
    fatal: Option<String>,
    /// The latest report of any kind.
    last: Option<String>,
    /// The latest line librdkafka logged at error level (it says more than a consumer's error
    /// event, which carries only a code).
    logged: Option<String>,
}

impl ClientErrors {
    /// A line of librdkafka's log (a client context's `log`): kept when at error level or worse.
    pub(crate) fn log(&self, level: RDKafkaLogLevel, line: &str) {
        use RDKafkaLogLevel::{Alert, Critical, Emerg, Error as Err};
        if matches!(level, Emerg | Alert | Critical | Err) {
            self.logged(line);
        }
    }

    /// Notes a line librdkafka logged at error level or worse.
    pub(crate) fn logged(&self, line: &str) {
        let mut reports = self.0.lock().unwrap_or_else(|p| p.into_inner());
        reports.logged = Some(line.trim().to_string());
    }

    /// Notes an error from librdkafka: from its error callback (with a reason), or from a
    /// consumer's poll (without one; the latest logged line stands in).
    pub(crate) fn record(&self, error: &KafkaError, reason: &str) {
        let mut reports = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let text = match (reason.is_empty(), &reports.logged) {
            (false, _) => format!("{error}: {reason}"),
            (true, Some(line)) => format!("{error}: {line}"),
            (true, None) => error.to_string(),
        };
        if is_fatal(error, &text) && reports.fatal.is_none() {
            reports.fatal = Some(text.clone());
        }
        reports.last = Some(text);
    }

    /// The first authentication or TLS failure, if there was one.
    pub(crate) fn fatal(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fatal
            .clone()
    }

    /// The latest reported error, if any.
    pub(crate) fn last(&self) -> Option<String> {
        let reports = self.0.lock().unwrap_or_else(|p| p.into_inner());
        reports.last.clone().or_else(|| reports.logged.clone())
    }

    /// `" (librdkafka last said: …)"`, or nothing.
    pub(crate) fn last_said(&self) -> String {
        self.last()
            .map(|e| format!("; librdkafka last said: {e}"))
            .unwrap_or_default()
    }
}

/// Whether an error is an authentication or TLS failure that retrying will not mend. librdkafka
/// reports some passing trouble under the same codes — a SASL handshake cut by a broker
/// restarting ("Broker transport failure", "timed out"), an OAUTHBEARER token it could not
/// refresh yet (it keeps the valid one and tries again), a socket error in the middle of a TLS
/// handshake ("SSL transport error") — so those reasons are not fatal.
fn is_fatal(error: &KafkaError, reason: &str) -> bool {
    let code = matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::SSL
        )
    );
    let passing = [
        "transport failure",
        "timed out",
        "OAUTHBEARER token",
        "SSL transport error",
    ];
    code && !passing.iter().any(|p| reason.contains(p))
}

/// The message for a job failed by an authentication or TLS failure of `what` (which names
/// the brokers).
pub(crate) fn refused(what: &str, reason: &str) -> String {
    format!(
        "{what}: the connection was refused: {reason}; check the security properties ({SECURITY_PROPERTIES})"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authentication_and_tls_failures_are_kept_as_fatal_and_others_only_as_the_last() {
        let errors = ClientErrors::default();
        errors.record(
            &KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure),
            "Connection refused",
        );
        assert_eq!(errors.fatal(), None);
        assert!(errors.last_said().contains("Connection refused"));
        // Passing trouble under the same codes is not fatal.
        errors.record(
            &KafkaError::Global(RDKafkaErrorCode::Authentication),
            "sasl_ssl://b:9093/1: SASL mechanism handshake failed: Local: Broker transport failure",
        );
        errors.record(
            &KafkaError::Global(RDKafkaErrorCode::Authentication),
            "Failed to acquire SASL OAUTHBEARER token: connection refused",
        );
        assert_eq!(errors.fatal(), None);
        errors.record(
            &KafkaError::Global(RDKafkaErrorCode::SSL),
            "certificate verify failed",
        );
        errors.record(
            &KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
        );
        let fatal = errors.fatal().unwrap();
        assert!(fatal.contains("certificate verify failed"), "{fatal}");
        assert!(errors.last().unwrap().contains("brokers are down"));
    }

    #[test]
    fn an_error_without_a_reason_takes_the_latest_logged_line() {
        let errors = ClientErrors::default();
        errors.logged("SASL authentication error: refused (after 3ms in state AUTH_REQ)\n");
        assert!(errors.last_said().contains("SASL authentication error"));
        errors.record(
            &KafkaError::MessageConsumption(RDKafkaErrorCode::Authentication),
            "",
        );
        let fatal = errors.fatal().unwrap();
        assert!(
            fatal.contains("Authentication")
                && fatal.contains("SASL authentication error: refused"),
            "{fatal}"
        );
    }
}
