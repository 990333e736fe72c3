//! Head classification: both decision rules at and around their thresholds, per-layer head
//! lists, JSON round trip and rejection of bad files.

use fym_model::heads::{ClassificationRule, HeadKind, HeadLabels, HeadScores};

fn scores(cs: f32, ct: f32, ms: f32, mt: f32) -> HeadScores {
    HeadScores {
        cos_spatial: cs,
        cos_temporal: ct,
        mass_spatial: ms,
        mass_temporal: mt,
    }
}

#[test]
fn paper_rule_temporal_iff_spatial_below_alpha_times_temporal() {
    let rule = ClassificationRule::paper();
    assert_eq!(rule, ClassificationRule::Cosine { alpha: 1.25 });
    // 1.25·0.4 = 0.5 exactly in f32.
    assert_eq!(rule.label(&scores(0.49, 0.4, 0.0, 0.0)), HeadKind::Temporal);
    assert_eq!(rule.label(&scores(0.5, 0.4, 0.0, 0.0)), HeadKind::Spatial); // not strictly below
    assert_eq!(rule.label(&scores(0.9, 0.1, 0.0, 0.0)), HeadKind::Spatial);
    // Mass scores are ignored by this rule.
    assert_eq!(
        rule.label(&scores(0.1, 0.2, 100.0, 0.0)),
        HeadKind::Temporal
    );
    // A custom alpha moves the threshold.
    assert_eq!(
        ClassificationRule::Cosine { alpha: 2.0 }.label(&scores(0.7, 0.4, 0.0, 0.0)),
        HeadKind::Temporal
    );
}

#[test]
fn released_rule_temporal_iff_mass_ratio_at_least_threshold() {
    let rule = ClassificationRule::released_code();
    assert_eq!(rule, ClassificationRule::Mass { ratio: 1.3 });
    // 1.3·0.25 is 0.325 exactly (scaling by a power of two): the boundary counts as temporal.
    assert_eq!(
        rule.label(&scores(0.0, 0.0, 0.25, 0.325)),
        HeadKind::Temporal
    );
    assert_eq!(
        rule.label(&scores(0.0, 0.0, 0.25, 0.3249)),
        HeadKind::Spatial
    );
    assert_eq!(rule.label(&scores(9.0, 0.0, 0.1, 0.5)), HeadKind::Temporal);
}

fn example_scores() -> Vec<Vec<HeadScores>> {
    vec![
        vec![
            scores(0.8, 0.2, 0.6, 0.1),
            scores(0.3, 0.5, 0.2, 0.4),
            scores(0.6, 0.5, 0.3, 0.3),
        ],
        vec![
            scores(0.1, 0.9, 0.05, 0.7),
            scores(0.2, 0.1, 0.9, 0.05),
            scores(0.45, 0.4, 0.3, 0.45),
        ],
    ]
}

#[test]
fn classify_and_query_heads() {
    let labels = HeadLabels::classify(&example_scores(), ClassificationRule::paper()).unwrap();
    // Layer 0: 0.8<0.25 no; 0.3<0.625 yes; 0.6<0.625 yes. Layer 1: yes; 0.2<0.125 no; 0.45<0.5 yes.
    assert_eq!(labels.heads_of(HeadKind::Temporal, 0).unwrap(), vec![1, 2]);
    assert_eq!(labels.heads_of(HeadKind::Spatial, 0).unwrap(), vec![0]);
    assert_eq!(labels.heads_of(HeadKind::Temporal, 1).unwrap(), vec![0, 2]);
    assert_eq!(labels.heads_of(HeadKind::Spatial, 1).unwrap(), vec![1]);
    assert_eq!(labels.counts(), (2, 4));
    assert_eq!(labels.label(1, 1).unwrap(), HeadKind::Spatial);
    assert!(labels.heads_of(HeadKind::Spatial, 2).is_err());
    assert!(labels.label(0, 3).is_err());
    labels.check_shape(2, 3).unwrap();
    assert!(labels.check_shape(3, 3).is_err());
    assert!(labels
        .check_shape(2, 4)
        .unwrap_err()
        .to_string()
        .contains("layer 0"));

    // The released rule labels the same scores differently: w_t ≥ 1.3·w_s.
    let mass =
        HeadLabels::classify(&example_scores(), ClassificationRule::released_code()).unwrap();
    assert_eq!(mass.heads_of(HeadKind::Temporal, 0).unwrap(), vec![1]); // 0.3 < 0.39
    assert_eq!(mass.heads_of(HeadKind::Temporal, 1).unwrap(), vec![0, 2]); // 0.45 ≥ 0.39
}

#[test]
fn non_finite_scores_are_rejected_with_their_place() {
    let mut s = example_scores();
    s[1][2].cos_temporal = f32::NAN;
    let msg = HeadLabels::classify(&s, ClassificationRule::paper())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("layer 1 head 2") && msg.contains("cos_temporal"),
        "{msg}"
    );
    // The mass rule does not read cosine scores.
    HeadLabels::classify(&s, ClassificationRule::released_code()).unwrap();
}

#[test]
fn json_round_trip() {
    let labels = HeadLabels::classify(&example_scores(), ClassificationRule::paper()).unwrap();
    let text = labels.to_json();
    assert!(
        text.contains("\"cos_spatial\": 0.8") && text.contains("\"label\": \"temporal\""),
        "{text}"
    );
    assert_eq!(HeadLabels::from_json(&text, "h.json").unwrap(), labels);

    let mass =
        HeadLabels::classify(&example_scores(), ClassificationRule::Mass { ratio: 1.7 }).unwrap();
    assert_eq!(
        HeadLabels::from_json(&mass.to_json(), "h.json").unwrap(),
        mass
    );

    let dir = std::env::temp_dir().join(format!("fym-heads-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("heads.json");
    labels.save(&path).unwrap();
    assert_eq!(HeadLabels::load(&path).unwrap(), labels);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_json_is_rejected_naming_the_file() {
    let labels = HeadLabels::classify(&example_scores(), ClassificationRule::paper()).unwrap();
    let good = labels.to_json();
    for (from, to) in [
        ("\"temporal\"", "\"sideways\""),
        ("\"cosine\"", "\"magic\""),
        ("\"fym-head-labels\"", "\"other\""),
        ("\"head\": 1", "\"head\": 7"),
        ("\"cos_spatial\": 0.8", "\"cos_spatial\": \"high\""),
    ] {
        let bad = good.replacen(from, to, 1);
        assert_ne!(bad, good, "{from}");
        let msg = HeadLabels::from_json(&bad, "labels/bad.json")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("labels/bad.json"), "{from}: {msg}");
    }
    assert!(HeadLabels::from_json("{", "x.json").is_err());
    assert!(HeadLabels::load("/nonexistent/heads.json")
        .unwrap_err()
        .to_string()
        .contains("/nonexistent/heads.json"));
}
