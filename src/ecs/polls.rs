//! What the watch's polls saw, pure: the timeout's message says it ("every DescribeServices
//! call was throttled"), so a deadline reached while every call failed is not reported as a
//! rollout that was merely slow.

/// What the polls saw, for the timeout's message: a watch whose every call failed says so.
#[derive(Debug, Default)]
pub struct PollRecord {
    pub answered: u32,
    failed: u32,
    throttled: u32,
    last_error: Option<String>,
    /// The operation every failure named (`None`: none yet, or several).
    operation: Option<String>,
    mixed: bool,
    /// The poll under way at the deadline had no answer: it was cancelled.
    pub hung: bool,
}

impl PollRecord {
    pub fn failure(&mut self, msg: &str) {
        self.failed += 1;
        if ["Throttl", "RequestLimitExceeded", "TooManyRequests"]
            .iter()
            .any(|t| msg.contains(t))
        {
            self.throttled += 1;
        }
        let op = msg.split(" failed").next().unwrap_or_default().to_string();
        match &self.operation {
            Some(o) if *o != op => self.mixed = true,
            _ => self.operation = Some(op),
        }
        self.last_error = Some(msg.to_string());
    }

    /// "; every DescribeServices call was throttled (12 in all)" and the like.
    pub fn note(&self) -> String {
        let op = match (&self.operation, self.mixed) {
            (Some(o), false) => format!("{o} call"),
            _ => "call".to_string(),
        };
        let last = self.last_error.as_deref().unwrap_or_default();
        let cut = if self.hung {
            "; the last poll had no answer by the deadline and was cancelled"
        } else {
            ""
        };
        match (self.answered, self.failed) {
            (0, 0) if self.hung => {
                "; no call was answered: the first was still waiting at the deadline".into()
            }
            (0, 0) => String::new(),
            (0, f) if f == self.throttled => {
                format!("; every {op} was throttled ({f} in all){cut}")
            }
            (0, f) => format!("; every poll failed ({f} in all), the last: {last}{cut}"),
            (a, f) if f > 0 => format!("; {f} of {} polls failed, the last: {last}{cut}", a + f),
            _ => cut.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeouts_note_says_what_the_polls_saw() {
        let mut r = PollRecord::default();
        assert_eq!(r.note(), "");
        r.hung = true;
        assert_eq!(
            r.note(),
            "; no call was answered: the first was still waiting at the deadline"
        );
        let mut r = PollRecord::default();
        r.failure("DescribeServices failed: ThrottlingException: Rate exceeded");
        r.failure("DescribeServices failed: Throttling: Rate exceeded");
        assert_eq!(
            r.note(),
            "; every DescribeServices call was throttled (2 in all)"
        );
        r.failure("DescribeTargetHealth failed: HTTP 500");
        assert_eq!(
            r.note(),
            "; every poll failed (3 in all), the last: DescribeTargetHealth failed: HTTP 500"
        );
        r.answered = 1;
        assert_eq!(
            r.note(),
            "; 3 of 4 polls failed, the last: DescribeTargetHealth failed: HTTP 500"
        );
    }
}
