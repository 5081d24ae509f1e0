import Foundation

/// Every lifetime, limit and range Twofold applies, in one place: what the server enforces, what its pages, messages and
/// mails say, and what the API document states. ``standard`` holds the product's values; the server reads the copy it
/// was configured with (tests can configure another).
public struct TwofoldPolicy: Sendable, Hashable {
    public var sms: SMS
    public var push: Push
    public var stepUp: StepUp
    public var reauthentication: Reauthentication
    public var enrollment: Enrollment
    public var invitation: Invitation
    public var passwordReset: PasswordReset
    public var emailConfirmation: EmailConfirmation
    public var signIn: SignIn
    /// Slowing and stopping the guessing of second-factor codes for one account.
    public var lockout: SecondFactorLockoutPolicy
    public var passkeys: Passkeys
    public var oidc: OIDC
    public var radius: RADIUS
    /// The practice settings an administrator chooses: their defaults and allowed ranges.
    public var practice: PracticeSettings
    /// The longest text each named field takes (forms, the API and the importer check the same numbers).
    public var fields: Fields = .standard

    public init(
        sms: SMS, push: Push, stepUp: StepUp, reauthentication: Reauthentication, enrollment: Enrollment, invitation: Invitation,
        passwordReset: PasswordReset, emailConfirmation: EmailConfirmation, signIn: SignIn, lockout: SecondFactorLockoutPolicy,
        passkeys: Passkeys, oidc: OIDC, radius: RADIUS, practice: PracticeSettings
    ) {
        self.sms = sms
        self.push = push
        self.stepUp = stepUp
        self.reauthentication = reauthentication
        self.enrollment = enrollment
        self.invitation = invitation
        self.passwordReset = passwordReset
        self.emailConfirmation = emailConfirmation
        self.signIn = signIn
        self.lockout = lockout
        self.passkeys = passkeys
        self.oidc = oidc
        self.radius = radius
        self.practice = practice
    }

    /// The product's rules.
    public static let standard = TwofoldPolicy(
        sms: SMS(
            codeLifetime: 10 * 60, guessesPerCode: 5,
            burst: FixedWindowLimit(limit: 1, window: 30), hourly: FixedWindowLimit(limit: 5, window: 60 * 60)),
        push: Push(
            challengeLifetime: 2 * 60, enrollmentLifetime: 10 * 60,
            challengesPerUser: FixedWindowLimit(limit: 10, window: 10 * 60),
            enrollmentsPerAddress: FixedWindowLimit(limit: 20, window: 60 * 60)),
        stepUp: StepUp(challengeLifetime: 5 * 60, guessesPerChallenge: 5, assertionLifetime: 5 * 60),
        reauthentication: Reauthentication(validity: 5 * 60),
        enrollment: Enrollment(attemptsPerFactor: FixedWindowLimit(limit: 10, window: 60 * 60)),
        invitation: Invitation(validityDays: 7),
        passwordReset: PasswordReset(
            linkLifetime: 30 * 60,
            perAccount: FixedWindowLimit(limit: 3, window: 60 * 60), perLogin: FixedWindowLimit(limit: 5, window: 60 * 60),
            perAddress: FixedWindowLimit(limit: 10, window: 60 * 60), perPractice: FixedWindowLimit(limit: 100, window: 60 * 60)),
        emailConfirmation: EmailConfirmation(linkLifetime: 24 * 60 * 60),
        signIn: SignIn(
            passwordPerAccount: FixedWindowLimit(limit: 10, window: 15 * 60),
            passwordPerAddress: FixedWindowLimit(limit: 100, window: 15 * 60)),
        lockout: .standard,
        passkeys: Passkeys(
            challengeLifetime: 5 * 60,
            optionsPerAddress: FixedWindowLimit(limit: 60, window: 5 * 60),
            failuresPerAddress: FixedWindowLimit(limit: 30, window: 15 * 60)),
        oidc: OIDC(
            codeLifetime: 60, idTokenLifetime: 5 * 60, logoutTokenLifetime: 2 * 60, pendingRequestLifetime: 30 * 60,
            clientAuthenticationFailures: FixedWindowLimit(limit: 20, window: 10 * 60),
            tokenRequestsPerAddress: FixedWindowLimit(limit: 600, window: 60)),
        radius: RADIUS(challengeLifetime: 5 * 60),
        practice: PracticeSettings(
            nameLength: 1...120,
            rememberBrowserDays: Bounded(30, in: 0...90),
            inactivityMinutes: Bounded(30, in: 5...720),
            otpDigits: Bounded(6, in: 6...8),
            sessionLifetimeHours: Bounded(12, in: 1...24),
            accessTokenMinutes: Bounded(10, in: 5...15),
            refreshTokenDays: Bounded(14, in: 1...30),
            epcsWorkingHoursStart: Bounded(7, in: 0...23),
            epcsWorkingHoursEnd: Bounded(19, in: 1...24)))
}

/// A number an administrator chooses: its value for a new practice and the values allowed.
public struct Bounded<Value: Comparable & Sendable & Hashable>: Sendable, Hashable {
    public var `default`: Value
    public var range: ClosedRange<Value>

    public init(_ defaultValue: Value, in range: ClosedRange<Value>) {
        self.default = defaultValue
        self.range = range
    }

    public var lowerBound: Value { range.lowerBound }
    public var upperBound: Value { range.upperBound }
    public func contains(_ value: Value) -> Bool { range.contains(value) }
    /// `value` moved into the range (for values stored before a range narrowed).
    public func clamped(_ value: Value) -> Value { min(max(value, range.lowerBound), range.upperBound) }
}

extension TwofoldPolicy {
    /// Codes sent by text message.
    public struct SMS: Sendable, Hashable {
        /// A code works this long after it is sent.
        public var codeLifetime: TimeInterval
        /// Wrong guesses one code survives before it stops working.
        public var guessesPerCode: Int
        /// Messages to one user (and to one phone number) in a short window and per hour.
        public var burst: FixedWindowLimit
        public var hourly: FixedWindowLimit

        public init(codeLifetime: TimeInterval, guessesPerCode: Int, burst: FixedWindowLimit, hourly: FixedWindowLimit) {
            self.codeLifetime = codeLifetime
            self.guessesPerCode = guessesPerCode
            self.burst = burst
            self.hourly = hourly
        }

        public var codeLifetimeMinutes: Int { Int(codeLifetime / 60) }
    }

    /// Push devices: sign-in requests and enrolment links.
    public struct Push: Sendable, Hashable {
        /// A sign-in request waits this long for the device's answer.
        public var challengeLifetime: TimeInterval
        /// An enrolment QR code works this long.
        public var enrollmentLifetime: TimeInterval
        /// Requests sent to one user's devices.
        public var challengesPerUser: FixedWindowLimit
        /// Device enrolments (QR codes redeemed) from one client address.
        public var enrollmentsPerAddress: FixedWindowLimit

        public init(
            challengeLifetime: TimeInterval, enrollmentLifetime: TimeInterval, challengesPerUser: FixedWindowLimit,
            enrollmentsPerAddress: FixedWindowLimit
        ) {
            self.challengeLifetime = challengeLifetime
            self.enrollmentLifetime = enrollmentLifetime
            self.challengesPerUser = challengesPerUser
            self.enrollmentsPerAddress = enrollmentsPerAddress
        }

        public var challengeLifetimeMinutes: Int { Int(challengeLifetime / 60) }
        public var enrollmentLifetimeMinutes: Int { Int(enrollmentLifetime / 60) }
    }

    /// Step-up approvals of single actions (e.g. EPCS signing).
    public struct StepUp: Sendable, Hashable {
        public var challengeLifetime: TimeInterval
        /// Wrong codes one challenge survives.
        public var guessesPerChallenge: Int
        /// The signed assertion of an approval is valid this long.
        public var assertionLifetime: TimeInterval

        public init(challengeLifetime: TimeInterval, guessesPerChallenge: Int, assertionLifetime: TimeInterval) {
            self.challengeLifetime = challengeLifetime
            self.guessesPerChallenge = guessesPerChallenge
            self.assertionLifetime = assertionLifetime
        }
    }

    /// A password confirmed for a security change counts for further changes this long.
    public struct Reauthentication: Sendable, Hashable {
        public var validity: TimeInterval
        public init(validity: TimeInterval) { self.validity = validity }
    }

    /// Setting up a factor.
    public struct Enrollment: Sendable, Hashable {
        /// Codes tried against one pending factor before it is discarded.
        public var attemptsPerFactor: FixedWindowLimit
        public init(attemptsPerFactor: FixedWindowLimit) { self.attemptsPerFactor = attemptsPerFactor }
    }

    /// Invitations to new staff members.
    public struct Invitation: Sendable, Hashable {
        public var validityDays: Int
        public init(validityDays: Int) { self.validityDays = validityDays }
        public var validity: TimeInterval { TimeInterval(validityDays) * 86_400 }
    }

    /// Emailed links to choose a new password, and how many may be asked for.
    public struct PasswordReset: Sendable, Hashable {
        public var linkLifetime: TimeInterval
        /// Links mailed to one account.
        public var perAccount: FixedWindowLimit
        /// Requests naming one username or address (also when it matches no one).
        public var perLogin: FixedWindowLimit
        /// Requests from one client address.
        public var perAddress: FixedWindowLimit
        /// Links mailed to one practice's users.
        public var perPractice: FixedWindowLimit

        public init(
            linkLifetime: TimeInterval, perAccount: FixedWindowLimit, perLogin: FixedWindowLimit, perAddress: FixedWindowLimit,
            perPractice: FixedWindowLimit
        ) {
            self.linkLifetime = linkLifetime
            self.perAccount = perAccount
            self.perLogin = perLogin
            self.perAddress = perAddress
            self.perPractice = perPractice
        }

        public var linkLifetimeMinutes: Int { Int(linkLifetime / 60) }
    }

    /// Links confirming a new email address.
    public struct EmailConfirmation: Sendable, Hashable {
        public var linkLifetime: TimeInterval
        public init(linkLifetime: TimeInterval) { self.linkLifetime = linkLifetime }
        public var linkLifetimeHours: Int { Int(linkLifetime / 3600) }
    }

    /// Wrong passwords (sign-in, re-authentication, password change, RADIUS).
    public struct SignIn: Sendable, Hashable {
        /// For one username.
        public var passwordPerAccount: FixedWindowLimit
        /// From one client address (a clinic shares one address, hence generous).
        public var passwordPerAddress: FixedWindowLimit

        public init(passwordPerAccount: FixedWindowLimit, passwordPerAddress: FixedWindowLimit) {
            self.passwordPerAccount = passwordPerAccount
            self.passwordPerAddress = passwordPerAddress
        }
    }

    /// Passkey (WebAuthn) ceremonies, and passwordless passkey sign-in from the sign-in page.
    public struct Passkeys: Sendable, Hashable {
        /// A WebAuthn challenge (adding a passkey, signing in, step-up) can be answered this long after it is issued, once.
        public var challengeLifetime: TimeInterval
        /// Ceremonies started from one client address.
        public var optionsPerAddress: FixedWindowLimit
        /// Failed sign-ins from one client address.
        public var failuresPerAddress: FixedWindowLimit

        public init(challengeLifetime: TimeInterval, optionsPerAddress: FixedWindowLimit, failuresPerAddress: FixedWindowLimit) {
            self.challengeLifetime = challengeLifetime
            self.optionsPerAddress = optionsPerAddress
            self.failuresPerAddress = failuresPerAddress
        }
    }

    /// The OpenID Connect provider (access and refresh token lifetimes are practice settings).
    public struct OIDC: Sendable, Hashable {
        public var codeLifetime: TimeInterval
        public var idTokenLifetime: TimeInterval
        public var logoutTokenLifetime: TimeInterval
        /// An authorization request waits this long for the user to sign in.
        public var pendingRequestLifetime: TimeInterval
        /// Failed client authentications for one client id from one address; a success gives its reservation back.
        public var clientAuthenticationFailures: FixedWindowLimit
        /// Requests to the token, revocation and introspection endpoints from one client address.
        public var tokenRequestsPerAddress: FixedWindowLimit

        public init(
            codeLifetime: TimeInterval, idTokenLifetime: TimeInterval, logoutTokenLifetime: TimeInterval,
            pendingRequestLifetime: TimeInterval,
            clientAuthenticationFailures: FixedWindowLimit, tokenRequestsPerAddress: FixedWindowLimit
        ) {
            self.codeLifetime = codeLifetime
            self.idTokenLifetime = idTokenLifetime
            self.logoutTokenLifetime = logoutTokenLifetime
            self.pendingRequestLifetime = pendingRequestLifetime
            self.clientAuthenticationFailures = clientAuthenticationFailures
            self.tokenRequestsPerAddress = tokenRequestsPerAddress
        }
    }

    /// The RADIUS server.
    public struct RADIUS: Sendable, Hashable {
        /// An Access-Challenge waits this long for the user's answer.
        public var challengeLifetime: TimeInterval
        public init(challengeLifetime: TimeInterval) { self.challengeLifetime = challengeLifetime }
    }

    /// The defaults and allowed ranges of a practice's settings.
    public struct PracticeSettings: Sendable, Hashable {
        /// Characters in the practice's name (after trimming).
        public var nameLength: ClosedRange<Int>
        /// Days a browser that passed two-factor sign-in skips it; 0 turns remembering off.
        public var rememberBrowserDays: Bounded<Int>
        /// Minutes without activity after which a session ends.
        public var inactivityMinutes: Bounded<Int>
        /// Digits of authenticator-app and text-message codes.
        public var otpDigits: Bounded<Int>
        /// Hours after sign-in at which a session ends however busy it is.
        public var sessionLifetimeHours: Bounded<Int>
        /// Lifetime of access tokens issued to applications (OpenID Connect).
        public var accessTokenMinutes: Bounded<Int>
        /// Lifetime of refresh tokens (each use rotates the token).
        public var refreshTokenDays: Bounded<Int>
        /// EPCS working hours (UTC; start inclusive, end exclusive).
        public var epcsWorkingHoursStart: Bounded<Int>
        public var epcsWorkingHoursEnd: Bounded<Int>

        public init(
            nameLength: ClosedRange<Int>, rememberBrowserDays: Bounded<Int>, inactivityMinutes: Bounded<Int>, otpDigits: Bounded<Int>,
            sessionLifetimeHours: Bounded<Int>, accessTokenMinutes: Bounded<Int>, refreshTokenDays: Bounded<Int>,
            epcsWorkingHoursStart: Bounded<Int>, epcsWorkingHoursEnd: Bounded<Int>
        ) {
            self.nameLength = nameLength
            self.rememberBrowserDays = rememberBrowserDays
            self.inactivityMinutes = inactivityMinutes
            self.otpDigits = otpDigits
            self.sessionLifetimeHours = sessionLifetimeHours
            self.accessTokenMinutes = accessTokenMinutes
            self.refreshTokenDays = refreshTokenDays
            self.epcsWorkingHoursStart = epcsWorkingHoursStart
            self.epcsWorkingHoursEnd = epcsWorkingHoursEnd
        }
    }

    /// Every limit of the policy with a name, for checks over all of them.
    public var allLimits: [(name: String, limit: FixedWindowLimit)] {
        [
            ("sms.burst", sms.burst), ("sms.hourly", sms.hourly), ("push.challengesPerUser", push.challengesPerUser),
            ("push.enrollmentsPerAddress", push.enrollmentsPerAddress), ("enrollment.attemptsPerFactor", enrollment.attemptsPerFactor),
            ("passwordReset.perAccount", passwordReset.perAccount), ("passwordReset.perLogin", passwordReset.perLogin),
            ("passwordReset.perAddress", passwordReset.perAddress), ("passwordReset.perPractice", passwordReset.perPractice),
            ("signIn.passwordPerAccount", signIn.passwordPerAccount), ("signIn.passwordPerAddress", signIn.passwordPerAddress),
            ("passkeys.optionsPerAddress", passkeys.optionsPerAddress), ("passkeys.failuresPerAddress", passkeys.failuresPerAddress),
            ("oidc.clientAuthenticationFailures", oidc.clientAuthenticationFailures),
            ("oidc.tokenRequestsPerAddress", oidc.tokenRequestsPerAddress),
        ]
    }

    /// Every lifetime of the policy with a name.
    public var allLifetimes: [(name: String, lifetime: TimeInterval)] {
        [
            ("sms.codeLifetime", sms.codeLifetime), ("push.challengeLifetime", push.challengeLifetime),
            ("push.enrollmentLifetime", push.enrollmentLifetime),
            ("stepUp.challengeLifetime", stepUp.challengeLifetime), ("stepUp.assertionLifetime", stepUp.assertionLifetime),
            ("reauthentication.validity", reauthentication.validity), ("invitation.validity", invitation.validity),
            ("passwordReset.linkLifetime", passwordReset.linkLifetime), ("emailConfirmation.linkLifetime", emailConfirmation.linkLifetime),
            ("lockout.lockDuration", lockout.lockDuration), ("oidc.codeLifetime", oidc.codeLifetime),
            ("oidc.idTokenLifetime", oidc.idTokenLifetime),
            ("oidc.logoutTokenLifetime", oidc.logoutTokenLifetime), ("oidc.pendingRequestLifetime", oidc.pendingRequestLifetime),
            ("radius.challengeLifetime", radius.challengeLifetime), ("passkeys.challengeLifetime", passkeys.challengeLifetime),
        ]
    }

    /// Every bounded practice setting with its API name.
    public var allPracticeSettings: [(name: String, setting: Bounded<Int>)] {
        [
            ("rememberBrowserDays", practice.rememberBrowserDays), ("inactivityMinutes", practice.inactivityMinutes),
            ("otpDigits", practice.otpDigits),
            ("sessionLifetimeHours", practice.sessionLifetimeHours), ("accessTokenMinutes", practice.accessTokenMinutes),
            ("refreshTokenDays", practice.refreshTokenDays), ("epcsWorkingHoursStart", practice.epcsWorkingHoursStart),
            ("epcsWorkingHoursEnd", practice.epcsWorkingHoursEnd),
        ]
    }
}

extension TwofoldPolicy {
    /// The longest text (in characters) each named field takes: the server refuses longer input with a message that
    /// gives the number, the forms' `maxlength` and the API document's `maxLength` state the same one.
    public struct Fields: Sendable, Hashable, Codable {
        /// The name of a sign-in method or push device ("My iPhone").
        public var nickname: Int
        /// The name of an API key or an OpenID Connect application.
        public var integrationName: Int
        /// The name of a RADIUS client, and its address or network as typed.
        public var radiusClientName: Int
        public var radiusAddress: Int
        /// The credential service provider and the provider's reference of an EPCS identity proofing, and its level.
        public var proofingProvider: Int
        public var proofingReference: Int
        public var proofingLevel: Int
        /// The reason given when an EPCS grant is refused or revoked.
        public var reason: Int
        /// The reviewer's note on an EPCS report.
        public var reviewNote: Int

        public init(
            nickname: Int, integrationName: Int, radiusClientName: Int, radiusAddress: Int, proofingProvider: Int,
            proofingReference: Int, proofingLevel: Int, reason: Int, reviewNote: Int
        ) {
            self.nickname = nickname
            self.integrationName = integrationName
            self.radiusClientName = radiusClientName
            self.radiusAddress = radiusAddress
            self.proofingProvider = proofingProvider
            self.proofingReference = proofingReference
            self.proofingLevel = proofingLevel
            self.reason = reason
            self.reviewNote = reviewNote
        }

        /// The product's lengths.
        public static let standard = Fields(
            nickname: 60, integrationName: 100, radiusClientName: 80, radiusAddress: 60, proofingProvider: 120,
            proofingReference: 120, proofingLevel: 40, reason: 200, reviewNote: 2000)
    }
}
