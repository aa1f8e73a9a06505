/**
 * The {@code stepstream} command line (picocli): {@code serve}, {@code generate}, {@code models}, run in this
 * process over StepStream or against a server with {@code --server HOST:PORT}.
 */
package io.stepstream.protocol.cli;
