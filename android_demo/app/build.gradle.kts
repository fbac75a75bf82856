plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "dev.sdeploy.demo"
    compileSdk = 34

    defaultConfig {
        applicationId = "dev.sdeploy.demo"
        minSdk = 24
        targetSdk = 34
        versionCode = 1
        versionName = "0.1.0"
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"), "proguard-rules.pro")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    kotlinOptions {
        jvmTarget = "17"
    }

    // Keep model.ptl stored uncompressed in the APK so it can be read (and copied) as-is.
    androidResources {
        noCompress += "ptl"
    }

    testOptions {
        // The JVM unit tests under src/test read Python-made golden vectors; pass the variables on.
        unitTests.all { test ->
            listOf("SDEPLOY_GOLDEN_DIR", "SDEPLOY_MODEL_JSON", "SDEPLOY_MODEL_EXPECT", "SDEPLOY_REQUIRE_GOLDEN").forEach { name ->
                System.getenv(name)?.let { test.environment(name, it) }
            }
        }
    }
}

dependencies {
    // 1.13.1 is the last release of the PyTorch lite interpreter for Android; it reads TorchScript
    // bytecode up to version 8, which is what `sdeploy bundle --app android` exports.
    implementation("org.pytorch:pytorch_android_lite:1.13.1")

    implementation("androidx.core:core-ktx:1.12.0")
    implementation("androidx.appcompat:appcompat:1.6.1")
    implementation("androidx.activity:activity-ktx:1.8.2") // PickVisualMedia, TakePicture
    implementation("androidx.exifinterface:exifinterface:1.3.7")

    testImplementation("junit:junit:4.13.2")
}
