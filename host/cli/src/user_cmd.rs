//! `mailroom user add`: make a user (the first admin, say) from the command line.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use mailroom_crm::users::{self, NewUser, Plan, Role};

use crate::home::Home;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user; prints its id, and an API token with --token.
    Add {
        /// Sign-in email.
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// admin or member.
        #[arg(long, default_value = "member", value_parser = ["admin", "member"])]
        role: String,
        /// lite, plus, professional or enterprise.
        #[arg(long, default_value = "lite", value_parser = ["lite", "plus", "professional", "enterprise"])]
        plan: String,
        /// The environment variable holding the password (never on the command line).
        #[arg(long)]
        password_env: Option<String>,
        /// Also print a new API token with this name.
        #[arg(long)]
        token: Option<String>,
    },
}

pub async fn run(home: &Home, command: UserCommand) -> anyhow::Result<ExitCode> {
    let UserCommand::Add {
        email,
        name,
        role,
        plan,
        password_env,
        token,
    } = command;
    let db = home.db().await?;
    let password = match password_env {
        Some(var) => {
            Some(std::env::var(&var).with_context(|| format!("--password-env {var}: not set"))?)
        }
        None => None,
    };
    let user = users::create(
        &db,
        NewUser {
            email,
            name,
            role: if role == "admin" {
                Role::Admin
            } else {
                Role::Member
            },
            plan: match plan.as_str() {
                "plus" => Plan::Plus,
                "professional" => Plan::Professional,
                "enterprise" => Plan::Enterprise,
                _ => Plan::Lite,
            },
            password,
        },
    )
    .await?;
    println!("user {} {}", user.id, user.email);
    if let Some(name) = token {
        let token = mailroom_web::api_token(&db, &user, &name).await?;
        println!("token {token}");
    }
    Ok(ExitCode::SUCCESS)
}
