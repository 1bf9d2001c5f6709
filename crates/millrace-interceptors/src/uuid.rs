//! `uuid`: sets a header to a random UUID, so events can be de-duplicated downstream.

use millrace_core::{Event, Interceptor, Props};

pub struct UuidInterceptor {
    header: String,
    preserve: bool,
    prefix: String,
}

impl UuidInterceptor {
    pub fn from_props(p: &Props) -> Option<Self> {
        let header = p.string("headerName", "id");
        let preserve = p.bool("preserveExisting", true);
        let prefix = p.string("prefix", "");
        (!p.has_errors()).then_some(UuidInterceptor {
            header,
            preserve,
            prefix,
        })
    }
}

impl Interceptor for UuidInterceptor {
    fn intercept(&self, mut batch: Vec<Event>) -> Vec<Event> {
        for e in &mut batch {
            if self.preserve && e.headers.contains_key(&self.header) {
                continue;
            }
            let id = format!("{}{}", self.prefix, ::uuid::Uuid::new_v4());
            e.headers.insert(self.header.clone(), id);
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_prefixed_and_preserved() {
        let p = Props::from_pairs(&[("prefix", "app-")]);
        let i = UuidInterceptor::from_props(&p).unwrap();
        let out = i.intercept(vec![
            Event::default(),
            Event::default(),
            Event::default().with_header("id", "keep"),
        ]);
        let a = out[0].header("id").unwrap();
        assert!(a.starts_with("app-") && a.len() == 40, "{a}");
        assert_ne!(out[0].header("id"), out[1].header("id"));
        assert_eq!(out[2].header("id"), Some("keep"));
    }
}
