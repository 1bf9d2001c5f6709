//! `static`: sets one fixed header on every event.

use millrace_core::{Event, Interceptor, Props};

pub struct StaticInterceptor {
    key: String,
    value: String,
    preserve: bool,
}

impl StaticInterceptor {
    pub fn from_props(p: &Props) -> Option<Self> {
        let key = p.string("key", "key");
        let value = p.string("value", "value");
        let preserve = p.bool("preserveExisting", true);
        (!p.has_errors()).then_some(StaticInterceptor {
            key,
            value,
            preserve,
        })
    }
}

impl Interceptor for StaticInterceptor {
    fn intercept(&self, mut batch: Vec<Event>) -> Vec<Event> {
        for e in &mut batch {
            super::set_header(e, &self.key, &self.value, self.preserve);
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preserves_by_default() {
        let p = Props::from_pairs(&[("key", "dc"), ("value", "eu")]);
        let i = StaticInterceptor::from_props(&p).unwrap();
        let out = i.intercept(vec![
            Event::default().with_header("dc", "us"),
            Event::default(),
        ]);
        assert_eq!(out[0].header("dc"), Some("us"));
        assert_eq!(out[1].header("dc"), Some("eu"));
        let p = Props::from_pairs(&[("preserveExisting", "false")]);
        let out = StaticInterceptor::from_props(&p)
            .unwrap()
            .intercept(vec![Event::default().with_header("key", "x")]);
        assert_eq!(out[0].header("key"), Some("value"));
    }
}
