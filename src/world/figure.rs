//! An articulated human-like figure: a skeleton of fixed-length bones whose joint angles follow an
//! action over time (forward kinematics), drawn as a head disc and capsule limbs.

use std::f32::consts::{PI, TAU};

use super::palette::Color;

/// What the figure does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Walk,
    Wave,
    Jump,
    Squat,
    Dance,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::Walk,
        Action::Wave,
        Action::Jump,
        Action::Squat,
        Action::Dance,
    ];

    /// The caption verb ("a person waves").
    pub fn verb(self) -> &'static str {
        match self {
            Action::Walk => "walks",
            Action::Wave => "waves",
            Action::Jump => "jumps",
            Action::Squat => "squats",
            Action::Dance => "dances",
        }
    }
}

/// The joints whose positions the ground truth reports, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Joint {
    Head,
    Neck,
    Pelvis,
    LeftElbow,
    LeftHand,
    RightElbow,
    RightHand,
    LeftKnee,
    LeftFoot,
    RightKnee,
    RightFoot,
}

impl Joint {
    pub const COUNT: usize = 11;
    pub const ALL: [Joint; Joint::COUNT] = [
        Joint::Head,
        Joint::Neck,
        Joint::Pelvis,
        Joint::LeftElbow,
        Joint::LeftHand,
        Joint::RightElbow,
        Joint::RightHand,
        Joint::LeftKnee,
        Joint::LeftFoot,
        Joint::RightKnee,
        Joint::RightFoot,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Joint::Head => "head",
            Joint::Neck => "neck",
            Joint::Pelvis => "pelvis",
            Joint::LeftElbow => "left_elbow",
            Joint::LeftHand => "left_hand",
            Joint::RightElbow => "right_elbow",
            Joint::RightHand => "right_hand",
            Joint::LeftKnee => "left_knee",
            Joint::LeftFoot => "left_foot",
            Joint::RightKnee => "right_knee",
            Joint::RightFoot => "right_foot",
        }
    }
}

/// The bones as (parent joint, child joint, length in figure heights). Shoulders sit at the neck and
/// hips at the pelvis, so every bone's length stays fixed whatever the pose.
pub const BONES: [(Joint, Joint, f32); 10] = [
    (Joint::Pelvis, Joint::Neck, TORSO),
    (Joint::Neck, Joint::Head, NECK),
    (Joint::Neck, Joint::LeftElbow, UPPER_ARM),
    (Joint::LeftElbow, Joint::LeftHand, FOREARM),
    (Joint::Neck, Joint::RightElbow, UPPER_ARM),
    (Joint::RightElbow, Joint::RightHand, FOREARM),
    (Joint::Pelvis, Joint::LeftKnee, THIGH),
    (Joint::LeftKnee, Joint::LeftFoot, SHIN),
    (Joint::Pelvis, Joint::RightKnee, THIGH),
    (Joint::RightKnee, Joint::RightFoot, SHIN),
];

const TORSO: f32 = 0.30;
const NECK: f32 = 0.12;
const UPPER_ARM: f32 = 0.17;
const FOREARM: f32 = 0.16;
const THIGH: f32 = 0.25;
const SHIN: f32 = 0.24;
/// Radius of the head disc, in figure heights.
pub const HEAD_RADIUS: f32 = 0.085;
/// Half-thickness of the torso and of the limbs, in figure heights.
pub const TORSO_RADIUS: f32 = 0.06;
pub const LIMB_RADIUS: f32 = 0.042;

/// A figure in the scene.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub action: Action,
    pub color: Color,
    /// Standing height, in texture units (1 = the shorter side of the frame).
    pub height: f32,
    /// World point on the ground under the pelvis at t = 0.
    pub start: [f32; 2],
    /// Horizontal travel over the clip in world units (walking: its sign is the direction).
    pub travel: f32,
    /// Action cycles (steps, waves, jumps, …) over the clip.
    pub cycles: f32,
    /// Depth among the objects (smaller is nearer).
    pub depth: f32,
}

/// Joint angles of one pose. Angles are absolute, in radians from straight down, positive towards
/// +x; the forearm and shin angles are relative to their upper bone.
struct Angles {
    lean: f32,
    shoulder: [f32; 2],
    elbow: [f32; 2],
    hip: [f32; 2],
    knee: [f32; 2],
    /// Upward offset of the whole body above ground contact, in figure heights.
    lift: f32,
    /// Sideways offset of the body, in figure heights.
    sway: f32,
}

impl Figure {
    /// World point on the ground under the figure at clip time `t`.
    pub fn ground(&self, t: f32) -> [f32; 2] {
        [self.start[0] + self.travel * t, self.start[1]]
    }

    /// Joint offsets from the ground point at clip time `t`, in figure heights (y down), in
    /// [`Joint::ALL`] order.
    pub fn pose(&self, t: f32) -> [[f32; 2]; Joint::COUNT] {
        let a = self.angles(TAU * self.cycles * t);
        let dir = |angle: f32, len: f32| [len * angle.sin(), len * angle.cos()];
        let add = |p: [f32; 2], d: [f32; 2]| [p[0] + d[0], p[1] + d[1]];
        let knees = [dir(a.hip[0], THIGH), dir(a.hip[1], THIGH)];
        let feet = [
            add(knees[0], dir(a.hip[0] + a.knee[0], SHIN)),
            add(knees[1], dir(a.hip[1] + a.knee[1], SHIN)),
        ];
        // Stand on the lower foot, then lift.
        let drop = feet[0][1].max(feet[1][1]);
        let pelvis = [a.sway, -drop - a.lift];
        let neck = add(pelvis, dir(PI + a.lean, TORSO));
        let head = add(neck, dir(PI + a.lean, NECK));
        let elbows = [
            add(neck, dir(a.shoulder[0], UPPER_ARM)),
            add(neck, dir(a.shoulder[1], UPPER_ARM)),
        ];
        let hands = [
            add(elbows[0], dir(a.shoulder[0] + a.elbow[0], FOREARM)),
            add(elbows[1], dir(a.shoulder[1] + a.elbow[1], FOREARM)),
        ];
        let mut joints = [
            head,
            neck,
            pelvis,
            elbows[0],
            hands[0],
            elbows[1],
            hands[1],
            add(pelvis, knees[0]),
            add(pelvis, feet[0]),
            add(pelvis, knees[1]),
            add(pelvis, feet[1]),
        ];
        if self.action == Action::Walk && self.travel < 0.0 {
            // Walking left: the side view mirrored.
            for joint in &mut joints {
                joint[0] = -joint[0];
            }
        }
        joints
    }

    fn angles(&self, phase: f32) -> Angles {
        let (s, c) = phase.sin_cos();
        match self.action {
            // Side view: legs and arms swing in opposition, the knee bends as its leg swings forward.
            Action::Walk => Angles {
                lean: 0.05,
                shoulder: [-0.45 * s, 0.45 * s],
                elbow: [0.35, 0.35],
                hip: [0.45 * s, -0.45 * s],
                knee: [-0.7 * c.max(0.0), -0.7 * (-c).max(0.0)],
                lift: 0.0,
                sway: 0.0,
            },
            // Front view: the right arm raised, its forearm swinging side to side.
            Action::Wave => Angles {
                lean: 0.0,
                shoulder: [-0.2, 2.4],
                elbow: [0.1, 0.35 + 0.55 * s],
                hip: [-0.12, 0.12],
                knee: [0.0, 0.0],
                lift: 0.0,
                sway: 0.0,
            },
            // Crouch, push off, fly with arms up, land and crouch again.
            Action::Jump => {
                let u = (phase / TAU).rem_euclid(1.0);
                let (crouch, air) = if u < 0.3 {
                    ((PI * u / 0.3).sin(), 0.0)
                } else if u < 0.8 {
                    (0.0, ((u - 0.3) / 0.5 * PI).sin())
                } else {
                    (0.6 * (PI * (u - 0.8) / 0.2).sin(), 0.0)
                };
                let arms = 0.3 + 2.2 * air;
                Angles {
                    lean: 0.0,
                    shoulder: [-arms, arms],
                    elbow: [0.0, 0.0],
                    hip: [-(0.12 + 0.6 * crouch), 0.12 + 0.6 * crouch],
                    knee: [1.2 * crouch, -1.2 * crouch],
                    lift: 0.22 * air,
                    sway: 0.0,
                }
            }
            // Front view: knees bend outwards as the body lowers, arms rise for balance.
            Action::Squat => {
                let bend = 0.5 * (1.0 - c);
                Angles {
                    lean: 0.0,
                    shoulder: [-(0.25 + 1.3 * bend), 0.25 + 1.3 * bend],
                    elbow: [0.0, 0.0],
                    hip: [-(0.12 + 0.8 * bend), 0.12 + 0.8 * bend],
                    knee: [1.6 * bend, -1.6 * bend],
                    lift: 0.0,
                    sway: 0.0,
                }
            }
            // Hips sway, arms pump overhead in turn, knees bounce at twice the beat.
            Action::Dance => {
                let beat = (2.0 * phase).sin();
                Angles {
                    lean: 0.15 * s,
                    shoulder: [-(1.6 + 1.0 * s), 1.6 - 1.0 * s],
                    elbow: [-0.6 * beat, 0.6 * beat],
                    hip: [-0.15 - 0.15 * s.max(0.0), 0.15 + 0.15 * (-s).max(0.0)],
                    knee: [0.4 * beat.max(0.0), -0.4 * beat.max(0.0)],
                    lift: 0.03 * beat.abs(),
                    sway: 0.06 * s,
                }
            }
        }
    }
}
